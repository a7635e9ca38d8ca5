"""Fit the gradability gate (drscreen.models.quality) and write it as a quality.json.

    python scripts/fit_quality_gate.py                                # the shipped default
    python scripts/fit_quality_gate.py --data=LABELLED --validation_data=LABELLED_VAL \
        --dataset=synthetic --out=RUN_DIR/quality.json                # a programme's own

Every flag is a field of `drscreen.training.quality_gate.GateFitConfig`. Without --data, it
generates two sets of the synthetic screening mix (--n photographs per set and size, at
--sizes, seeds --seed and --seed + 1) and refits drscreen's default gate
(drscreen/models/quality_gate.json). Expected runtime: ~5 min on 2 shared cores, most of it
generating 1600 photographs; expected: validation ungradable-detection AUC above 0.98.
"""

import shlex
import sys

from drscreen.cli.terminal import quiet_tensorflow

quiet_tensorflow()

from absl import app  # noqa: E402

from drscreen.cli.config_flags import config_from_flags, define_config_flags  # noqa: E402
from drscreen.training.quality_gate import GateFitConfig, fit_and_save  # noqa: E402

define_config_flags(GateFitConfig)


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    try:
        config = config_from_flags(GateFitConfig)
    except ValueError as error:
        raise app.UsageError(str(error)) from error
    command = shlex.join(["python", "scripts/fit_quality_gate.py", *sys.argv[1:]])
    gate, figures = fit_and_save(config, command)
    validation = figures["validation"]
    print(
        f"wrote {config.out}: validation ungradable-detection AUC {validation['auc']:.4f}, "
        f"{validation['caught']:.1%} of {validation['ungradable']} ungradable caught at "
        f"quality <= {gate.threshold:.3f}"
    )


if __name__ == "__main__":
    app.run(main)
