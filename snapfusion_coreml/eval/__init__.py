"""Quality evaluation: the attribute judge of the shapes domain (judge.py, train_judge.py), CLIP
score and Frechet distances (scores.py), and the guidance-sweep evaluation (run.py, outputs.py)."""
