"""The lab: what makes and measures the product, beside it and never shipped with it (the Blender extension
holds only `gtr_backend`).

- `training/`: procedural objects, view pools and dataset folders, stage 1 (NeRF) and stage 2 (mesh), runs and
  campaigns in GPU jobs;
- `evaluation/`: the paper's protocol, its metrics and baselines, benchmarks, the results page;
- `synthetic/`: objects with known ground truth (procedural meshes, fitted triplanes, the evaluation set);
- `cli/`: their `gtr` subcommands (train, campaign, dataset, eval, report, bench);
- `lpips.py`: the perceptual distance, a training loss and an evaluation metric.

The lab imports the product (`gtr_backend`: its metrics, devices, files), and training never imports
evaluation (the benchmarks time training: evaluation imports training); the product never imports the lab (its
`gtr` command finds the lab's subcommands by name when the lab is installed).
"""
