"""Quality evaluation: the procedural shapes data set (shapes.py, also the training data), the
attribute judge of that domain (judge.py, train_judge.py), CLIP score and Frechet distances
(scores.py), and the guidance-sweep evaluation (run.py, outputs.py)."""
