"""Real-format sample files, written by the tests themselves (nothing outside the repository is
read): Kaggle Criteo in its header-and-comma variant (floats in integer columns, empty cells),
Avazu's train CSV, and a generic CSV shaped like FuxiCTR's tiny Taobao sample (the schema of
conf/data/csv.yaml)."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

CRITEO_HEADER = ["label", *[f"I{i}" for i in range(1, 14)], *[f"C{i}" for i in range(1, 27)]]
AVAZU_HEADER = ["id", "click", "hour", "C1", "banner_pos", "site_id", "site_domain", "site_category", "app_id",
                "app_domain", "app_category", "device_id", "device_ip", "device_model", "device_type",
                "device_conn_type", "C14", "C15", "C16", "C17", "C18", "C19", "C20", "C21"]
CSV_HEADER = ["clk", "time_stamp", "userid", "adgroup_id", "pid", "cate_id", "campaign_id", "customer", "brand",
              "price", "cms_segid", "cms_group_id", "final_gender_code", "age_level", "pvalue_level",
              "shopping_level", "occupation", "new_user_class_level", "click_sequence"]


def _hex(rng, pool: int) -> str:
    return f"{int(rng.integers(pool)) * 2654435761 % 2**32:08x}"


def _write(path: Path, header, rows) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def criteo_csv_variant(path: Path, rows: int = 400, seed: int = 0) -> Path:
    """label,I1..I13,C1..C26 with a header; integers written as floats ("260.0"), some empty."""
    rng = np.random.default_rng(seed)
    lines = []
    for n in range(rows):
        ints = ["" if rng.random() < 0.3 else f"{float(rng.integers(-1, 5000)):.1f}" for _ in range(13)]
        cats = ["" if rng.random() < 0.1 else _hex(rng, 5 + 3 * c) for c in range(26)]
        label = "1" if n % 4 == 0 else str(int(rng.random() < 0.1))
        lines.append([label, *ints, *cats])
    return _write(path, CRITEO_HEADER, lines)


def avazu_csv(path: Path, rows: int = 600, seed: int = 1) -> Path:
    """Avazu's train file: id, click, hour (one hour here: 14102100), 21 categorical columns."""
    rng = np.random.default_rng(seed)
    lines = []
    for n in range(rows):
        values = [str(int(rng.integers(1000, 1010))), str(int(rng.integers(0, 5)))]
        values += [_hex(rng, 20) for _ in range(9)]  # site_* / app_* / device id, ip, model
        values += [str(int(rng.integers(0, 5))), str(int(rng.integers(0, 4)))]
        values += [str(int(rng.integers(15000, 15010))) for _ in range(6)] + [str(int(rng.integers(-1, 3)))]
        values.append(str(int(rng.integers(70, 80))))
        lines.append([str(10**18 + n), str(n % 2 if n < 2 else int(rng.random() < 0.2)), "14102100", *values])
    return _write(path, AVAZU_HEADER, lines)


def generic_csv(path: Path, rows: int = 1000, seed: int = 2) -> Path:
    """A click log with the columns conf/data/csv.yaml's schema names (label clk, price numeric)."""
    rng = np.random.default_rng(seed)
    lines = []
    for n in range(rows):
        ids = [str(int(rng.integers(1, 10**6))) for _ in range(2)] + [f"430548_{1007 + int(rng.integers(2))}"]
        ids += [str(int(rng.integers(1, 2000))) for _ in range(4)]
        price = f"{float(rng.lognormal(3, 1.5)):.1f}"
        profile = [str(int(rng.integers(0, 5))) for _ in range(3)] + [str(int(rng.integers(1, 7)))]
        profile += ["" if rng.random() < 0.4 else str(int(rng.integers(1, 4))), str(int(rng.integers(1, 4))),
                    str(int(rng.integers(0, 2))), "" if rng.random() < 0.3 else str(int(rng.integers(1, 5)))]
        lines.append([str(n % 2 if n < 2 else int(rng.random() < 0.1)), "2017-05-06 00:00:00", *ids, price,
                      *profile, f"{int(rng.integers(1, 10**6))}^{int(rng.integers(1, 10**6))}"])
    return _write(path, CSV_HEADER, lines)
