"""Honest train/val/test splits of samples: by image within each group, by whole groups, by
named groups, or from a user's split file. A split is a list of sample indices per split name."""

from __future__ import annotations

import random
from pathlib import Path

from satseg.errors import DataError

SPLITS = ("train", "val", "test")


def image_split(samples: list, val: float = 0.15, test: float = 0.15, seed: int = 42) -> dict[str, list[int]]:
    """Sample indices per split, stratified by ``group`` (tile); at least one image per split
    for groups of three or more images."""
    rng = random.Random(seed)
    groups: dict[str, list[int]] = {}
    for i, s in enumerate(samples):
        groups.setdefault(s.group, []).append(i)
    out = {k: [] for k in SPLITS}
    for g in sorted(groups):
        ids = groups[g][:]
        rng.shuffle(ids)
        n = len(ids)
        n_test = max(round(test * n), 1 if n >= 3 and test > 0 else 0)
        n_val = max(round(val * n), 1 if n >= 3 and val > 0 else 0)
        out["test"] += ids[:n_test]
        out["val"] += ids[n_test:n_test + n_val]
        out["train"] += ids[n_test + n_val:]
    # Small datasets (groups of one or two images): still give val and test an image each.
    for k, frac in (("val", val), ("test", test)):
        if not out[k] and frac > 0 and len(out["train"]) > 1:
            out[k].append(out["train"].pop(rng.randrange(len(out["train"]))))
    return {k: sorted(v) for k, v in out.items()}


def group_split(samples, val: float = 0.15, test: float = 0.15, seed: int = 42) -> dict[str, list[int]]:
    """Whole groups (tiles, folders, regions) per split, drawn with ``seed``: no group has images
    in two splits, so chips that overlap on the ground never straddle train and test."""
    groups = sorted({s.group for s in samples})
    if len(groups) < 3:
        raise DataError(f"--split group needs at least 3 groups (folders or tiles); the data has "
                        f"{len(groups)} ({', '.join(groups)}); use --split image or name groups with --val-groups")
    rng = random.Random(seed)
    rng.shuffle(groups)
    n_test = max(round(test * len(groups)), 1 if test > 0 else 0)
    n_val = max(round(val * len(groups)), 1 if val > 0 else 0)
    split_of = {g: "test" for g in groups[:n_test]} | {g: "val" for g in groups[n_test:n_test + n_val]}
    out = {k: [] for k in SPLITS}
    for i, s in enumerate(samples):
        out[split_of.get(s.group, "train")].append(i)
    return out


def split_samples(samples, how: str = "image", val: float = 0.15, test: float = 0.15, seed: int = 42,
                  val_groups=(), test_groups=(), split_file=None, root=None) -> dict[str, list[int]]:
    """Sample indices per split. ``split_file`` (CSV ``image,split`` relative to ``root``) decides
    everything when given; else the named ``test_groups`` / ``val_groups`` go whole to their split
    and the rest is split by ``how`` (``image``: stratified by group; ``group``: whole groups)."""
    if split_file is not None:
        return read_split_file(split_file, samples, root)
    known = {s.group for s in samples}
    for flag, names in (("--val-groups", val_groups), ("--test-groups", test_groups)):
        unknown = [g for g in names if g not in known]
        if unknown:
            raise DataError(f"{flag}: no group named {', '.join(map(repr, unknown))}; the groups are "
                            f"{', '.join(sorted(known))}")
    both = set(val_groups) & set(test_groups)
    if both:
        raise DataError(f"group(s) {', '.join(sorted(both))} named in both --val-groups and --test-groups")
    fixed = {"val": set(val_groups), "test": set(test_groups)}
    rest = [i for i, s in enumerate(samples) if s.group not in fixed["val"] | fixed["test"]]
    if not rest:
        named = ", ".join(sorted(fixed["val"] | fixed["test"]))
        raise DataError(f"--val-groups / --test-groups name every group ({named}): no image is left to train on; "
                        f"the groups are {', '.join(sorted(known))}")
    sub = [samples[i] for i in rest]
    fr = {"val": 0.0 if val_groups else val, "test": 0.0 if test_groups else test}
    part = group_split(sub, fr["val"], fr["test"], seed) if how == "group" else image_split(sub, fr["val"], fr["test"], seed)
    out = {k: [rest[i] for i in part[k]] for k in SPLITS}
    for k in ("val", "test"):
        out[k] += [i for i, s in enumerate(samples) if s.group in fixed[k]]
    return {k: sorted(v) for k, v in out.items()}


def read_split_file(path, samples, root) -> dict[str, list[int]]:
    """A user's split: CSV lines ``image,split`` (train, val or test), image paths relative to the
    data root; every labelled image must be listed exactly once."""
    from satseg.data.layouts import read_csv_rows

    path = Path(path)
    rows = read_csv_rows(path, ["image", "split"], "split")
    index = {str(Path(s.image).relative_to(root)): i for i, s in enumerate(samples)}
    out = {k: [] for k in SPLITS}
    seen = set()
    for n, r in enumerate(rows, start=1):
        if len(r) != 2 or r[1].strip() not in SPLITS:
            raise DataError(f"{path}: line {n}: expected 'image,train|val|test', got {','.join(r)!r}")
        name = r[0].strip()
        if name not in index:
            raise DataError(f"{path}: line {n}: {name} is not a labelled image of {root}")
        if name in seen:
            raise DataError(f"{path}: line {n}: {name} is listed twice")
        seen.add(name)
        out[r[1].strip()].append(index[name])
    missing = [n for n in index if n not in seen]
    if missing:
        raise DataError(f"{path}: {len(missing)} labelled images are in no split (first: {missing[0]})")
    return {k: sorted(v) for k, v in out.items()}
