"""Inference: a trained run -> whole-chromosome predictions, saliency and variant scores."""
