"""Evaluation: rank-1 / rank-5, classification reports, confusion matrices, ensembles."""
