"""Darkroom's models: one module per task, each exposing Config, train, load, predict and evaluate."""
