"""Probe a synthetic teacher: does SE flatten where ME keeps improving, in AUC and in IA?

Trains SE and ME of one backbone at a few scales and seeds directly (no MLflow), and prints test
AUC / logloss, the mean IA of the large fields and the teacher's oracle AUCs. Used to design the
embedded demo benchmark; see README "The embedded benchmark".

    python benchmarks/probe_collapse.py --backbone dcnv2 --scales 1 4 --seeds 0 1 2 \
        data.synthetic.rows=300000 data.synthetic.spectrum_decay=0.25
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
from hydra import compose, initialize_config_dir

from recsys_scaling.budget import plan_job
from recsys_scaling.collapse import CollapseProbe
import recsys_scaling.config  # noqa: F401 - registers the config schemas
from recsys_scaling.paths import CONF_DIR
from recsys_scaling.data import load_dataset
from recsys_scaling.models import Shape, build_model
from recsys_scaling.train import fit, seed_everything


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="dcnv2")
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--arms", nargs="+", default=["se", "me"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--large", type=int, default=200, help="IA averaged over fields with at least this many values")
    parser.add_argument("--json", help="append one JSON line per job to this file")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", [f"model={args.backbone}", "data=synthetic", "train.progress=false",
                                 "train.checkpoint=false", *args.overrides])
    data = load_dataset(cfg.data)
    print("oracle:", json.dumps(data.meta.get("oracle")), "field_dims:", data.field_dims, flush=True)
    probe = CollapseProbe(data, cfg.diagnostics.max_rows)
    large = [i for i, c in enumerate(data.field_dims) if c >= args.large]
    for scale in args.scales:
        for arm in args.arms:
            if arm == "me" and scale == 1:
                continue
            for seed in args.seeds:
                plan = plan_job(cfg.model, arm, scale, data.field_dims, cfg.budget)
                shape = Shape.of(len(data.field_dims), plan.shape, arm)
                seed_everything(seed)
                model = build_model(cfg.model.backbone, data.field_dims, shape, cfg.model)
                start = time.perf_counter()
                result = fit(model, data, cfg.train, seed)
                fields = probe.measure(model.embedding)
                ia_large = float(np.mean([fields[i].ia_effective for i in large])) if large else float("nan")
                row = {"backbone": args.backbone, "arm": arm, "scale": scale, "seed": seed,
                       "test_auc": result.test_auc, "test_logloss": result.test_logloss,
                       "best_epoch": result.best_epoch, "ia_large": ia_large,
                       "params": plan.counts["total"], "seconds": time.perf_counter() - start,
                       "overrides": args.overrides}
                print(f"{args.backbone} {arm} {scale}x s{seed}: AUC {result.test_auc:.4f} logloss "
                      f"{result.test_logloss:.5f} IA(large) {ia_large:.2f} epoch {result.best_epoch} "
                      f"({row['seconds']:.0f}s)", flush=True)
                if args.json:
                    with open(args.json, "a") as fh:
                        fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
