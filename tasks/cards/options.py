"""What a person can ask of the card generator: light constants shared by the app and the model code.

Kept apart from diffusion.py so that building the UI does not import diffusers (several seconds of start-up).
"""

ANY = "any"  # the category name a person picks for "any stain"; the class index after the real categories
SCHEDULERS = ("DPM-Solver++", "DDIM", "DDPM")
STOCHASTIC = ("DPM-Solver++", "DDPM")  # samplers that draw fresh noise each step (from the per-card generators)
DEFAULT_STEPS = {"DPM-Solver++": 20, "DDIM": 50, "DDPM": 1000}
GUIDANCE = 3.0  # classifier-free guidance scale (1 = none): pushes samples toward the category (see `sample`)
MAX_GUIDANCE = 10.0
MAX_CARDS = 16  # per request: keeps one CPU request within seconds
STAIN_REGIONS = {  # (left, top, right, bottom) as fractions of the card: where "stain this card" may paint
    "centre": (0.3, 0.35, 0.7, 0.65), "top left": (0.05, 0.05, 0.4, 0.35), "top right": (0.6, 0.05, 0.95, 0.35),
    "bottom left": (0.05, 0.65, 0.4, 0.95), "bottom right": (0.6, 0.65, 0.95, 0.95), "most of the card": (0.08, 0.08, 0.92, 0.92),
}
UPSCALER_FOLDER = "upscale-x{factor}"  # in a Cards folder: the super-resolution cascade's nets (`tasks.upscale` folders)
CASCADE_FACTORS = (2, 4)
