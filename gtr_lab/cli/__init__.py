"""The lab's subcommands of the `gtr` command: train, campaign, dataset, eval, report and bench. The product's
command (`gtr_backend.cli`) registers `COMMANDS` after its own; each module has its `register(sub)` and its
`run(args)`, and shares the product's options (`gtr_backend.cli.common`)."""

from . import bench, campaign, dataset, evaluate, report, train

COMMANDS = (train, campaign, dataset, evaluate, report, bench)  # in `gtr --help` order

__all__ = ["COMMANDS"]
