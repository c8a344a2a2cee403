"""What a person can ask of the card generator: light constants shared by the app and the model code.

Kept apart from diffusion.py so that building the UI does not import diffusers (several seconds of start-up).
"""

ANY = "any"  # the category name a person picks for "any stain"; the class index after the real categories
SAMPLERS = ("DPM-Solver++", "DDIM", "DDPM")
STOCHASTIC = ("DPM-Solver++", "DDPM")  # samplers that draw fresh noise each step (from the per-card generators)
DEFAULT_STEPS = {"DPM-Solver++": 20, "DDIM": 50, "DDPM": 1000}
GUIDANCE = 3.0  # classifier-free guidance scale (1 = none): pushes samples toward the category (see `sample`)
MAX_GUIDANCE = 10.0
MAX_CARDS = 16  # per request: keeps one CPU request within seconds
