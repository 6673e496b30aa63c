"""Which image goes with which mask: the layouts people ship datasets in.

Files are recognised by what they hold (JPEG bytes under ``.png`` are a JPEG), not by their name.
Pairs are found, in order of precedence, from

- a pairs file (``--pairs FILE``: CSV lines ``image,mask[,group]``, paths relative to the data root);
- a mask tree (``--masks DIR``): the mask of ``DATA/a/x.jpg`` is ``DIR/a/x.*`` (or ``x<suffix>.*``);
- folder pairs found under the root: an image folder (``images``, ``data``, ``imgs``, ...) beside a
  mask folder (``masks``, ``labels``, ``gt``, ...), mirrored below them: the Dubai tiles
  (``Tile 1/images`` + ``Tile 1/masks``), ``images/`` + ``masks/``, ``data/N`` + ``labels/N``;
- masks beside their images, named by the image's stem plus a common suffix (``x_mask.tif``,
  ``x.mask.tif``, ``x_label.png``, ``x_gt.png``, ...).

A mask has the image's stem (any extension) or the stem plus one of those suffixes. Each sample
has a ``group`` (a tile or top-level folder) for honest splits. A folder whose images all lack
masks is unlabelled imagery; a folder where only some lack them is an error (a broken pairing).
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from satseg.errors import DataError
from satseg.imaging import sniff

IMAGE_DIRS = ("images", "image", "imgs", "img", "data", "rgb", "inputs", "input", "scenes", "chips", "tiles")
MASK_DIRS = ("masks", "mask", "labels", "label", "gt", "groundtruth", "ground_truth", "annotations", "annotation",
             "ann", "targets", "target", "lbl", "segmentation", "seg")
MASK_SUFFIXES = ("_mask", ".mask", "-mask", "_masks", "_label", ".label", "-label", "_labels", "_lbl", "_gt", ".gt",
                 "-gt", "_seg", "_segmentation", "_annotation", "_ann", "_target")


@dataclass(frozen=True)
class Sample:
    """One image and its mask (None: unlabelled); ``group`` is its tile or folder, the unit of
    stratified and group splits."""

    image: Path
    mask: Path | None
    group: str


@dataclass
class Pairing:
    """What was found under a data root: samples (labelled and not), masks without an image,
    files that are not rasters, and how they were paired."""

    root: Path
    layout: str
    samples: list[Sample] = field(default_factory=list)
    orphan_masks: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)

    @property
    def labelled(self) -> list[Sample]:
        return [s for s in self.samples if s.mask is not None]

    @property
    def unlabelled(self) -> list[Sample]:
        return [s for s in self.samples if s.mask is None]

    def unlabelled_groups(self) -> dict[str, int]:
        """Groups none of whose images has a mask, with their image counts."""
        have = {s.group for s in self.labelled}
        return dict(sorted(Counter(s.group for s in self.unlabelled if s.group not in have).items()))

    def check_complete(self):
        """Refuse a group where some images have masks and others do not (a broken pairing)."""
        have = {s.group for s in self.labelled}
        for s in self.unlabelled:
            if s.group in have:
                raise DataError(f"{s.image}: image has no mask ({self.looked_for(s)}); "
                                "other images of its folder have one")

    def looked_for(self, s: Sample) -> str:
        return f"looked for {self._mask_hint.get(s.image, 'a mask with its stem')}"

    _mask_hint: dict = field(default_factory=dict, repr=False)


def _walk(root: Path):
    """Every regular file under root (sorted; hidden entries, followed links, pipes and devices
    excluded: opening a named pipe to sniff it would wait forever)."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for f in sorted(filenames):
            p = Path(dirpath) / f
            if not f.startswith(".") and p.is_file():
                yield p


def _stem(p: Path) -> str:
    return p.name.rsplit(".", 1)[0] if "." in p.name else p.name


def _index(files) -> dict[str, list[Path]]:
    out: dict[str, list[Path]] = {}
    for f in files:
        out.setdefault(_stem(f), []).append(f)
    return out


def _mask_for(image: Path, by_stem: dict[str, list[Path]]) -> Path | None:
    stem = _stem(image)
    found = list(by_stem.get(stem, []))
    if not found:
        for s in MASK_SUFFIXES:
            found += by_stem.get(stem + s, [])
    found = [f for f in found if f != image]
    if len(found) > 1:
        raise DataError(f"{image}: more than one mask matches it ({', '.join(f.name for f in found)}); "
                        "keep one, or pass --pairs FILE")
    return found[0] if found else None


def _group(*parts: str) -> str:
    g = "/".join(p for p in parts if p and p != ".")
    return g or "."


def _rasters(root: Path, skipped: list) -> list[Path]:
    out = []
    for f in _walk(root):
        (out if sniff(f) else skipped).append(f)
    return out


def is_mask_path(path: Path, root: Path) -> bool:
    """A file that a dataset layout makes a mask: inside a mask folder below ``root``, or named
    like ``x_mask.tif`` beside an ``x.*`` (what prediction over a dataset folder must skip)."""
    if any(part.lower() in MASK_DIRS for part in path.relative_to(root).parts[:-1]):
        return True
    stem = _stem(path)
    for s in MASK_SUFFIXES:
        if stem.lower().endswith(s) and any(f.is_file() for f in path.parent.glob(f"{stem[: -len(s)]}.*")):
            return True
    return False


def images_in(folder: Path) -> list[Path]:
    """Image files below a folder, by content, never masks (see :func:`is_mask_path`)."""
    return [f for f in _walk(folder) if sniff(f) and not is_mask_path(f, folder)]


def unlabelled_samples(paths) -> list[Sample]:
    """Imagery without labels (``--unlabeled``): image files, and the images below folders; the
    group of each is the path it came from."""
    out = []
    for p in map(Path, paths):
        if p.is_file():
            if not sniff(p):
                raise DataError(f"{p}: not an image satseg can read (--unlabeled)")
            files = [p]
        elif p.is_dir():
            files = images_in(p)
            if not files:
                raise DataError(f"{p}: no images in this folder (--unlabeled)")
        else:
            raise DataError(f"{p}: no such file or folder (--unlabeled)")
        out += [Sample(f, None, f"unlabelled:{p.name}") for f in files]
    return out


def pair_files(root, masks=None, pairs=None) -> Pairing:
    """Every image under ``root`` with its mask (or None), by the first rule that applies."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: dataset directory not found")
    if pairs is not None:
        return _from_pairs_file(root, Path(pairs))
    if masks is not None:
        return _from_mask_tree(root, Path(masks))
    skipped: list[Path] = []
    files = _rasters(root, skipped)
    found = _folder_pairs(root, files, skipped)
    if found is None:
        found = _suffix_pairs(root, files, skipped)
    _check_stems(found)
    return found


def _folder_pairs(root: Path, files: list[Path], skipped: list[Path]) -> Pairing | None:
    """Image folders beside mask folders (``images``/``masks``, ``data``/``labels``, ...)."""
    dirs = sorted({f.parent for f in files} | {p for f in files for p in f.parents if root in p.parents or p == root})
    pairs = []
    for d in dirs:
        kids = {c.name.lower(): c for c in d.iterdir() if c.is_dir() and not c.name.startswith(".")} if d.is_dir() else {}
        imgs = [kids[n] for n in IMAGE_DIRS if n in kids]
        msks = [kids[n] for n in MASK_DIRS if n in kids]
        if imgs and msks:
            if len(imgs) > 1 or len(msks) > 1:
                names = ", ".join(p.name + "/" for p in imgs + msks)
                raise DataError(f"{d}: cannot tell images from masks among {names}; pass --masks DIR or --pairs FILE")
            pairs.append((d, imgs[0], msks[0]))
    if not pairs:
        return None
    out = Pairing(root, "image and mask folders (" + ", ".join(sorted({f"{i.name}/ + {m.name}/" for _, i, m in pairs}))
                  + ")")
    used = set()
    for d, img_dir, mask_dir in pairs:
        in_img = [f for f in files if img_dir in f.parents]
        in_mask = [f for f in files if mask_dir in f.parents]
        by_dir: dict[Path, dict] = {}
        for m in in_mask:
            by_dir.setdefault(m.parent.relative_to(mask_dir), {}).setdefault(_stem(m), []).append(m)
        matched = set()
        for img in in_img:
            rel = img.parent.relative_to(img_dir)
            mask = _mask_for(img, by_dir.get(rel, {}))
            matched.add(mask)
            group = _group(str(d.relative_to(root)), rel.parts[0] if rel.parts else "")
            out.samples.append(Sample(img, mask, group))
            out._mask_hint[img] = f"{mask_dir / rel / _stem(img)}.* or {_stem(img)}_mask.* and the like"
        out.orphan_masks += [m for m in in_mask if m not in matched]
        used |= set(in_img) | set(in_mask)
    out.skipped = skipped + [f for f in files if f not in used]
    return out


def _suffix_pairs(root: Path, files: list[Path], skipped: list[Path]) -> Pairing:
    """Masks beside their images, named ``<stem><suffix>.<ext>``."""
    by_dir: dict[Path, list[Path]] = {}
    for f in files:
        by_dir.setdefault(f.parent, []).append(f)
    out = Pairing(root, "masks beside images", skipped=skipped)
    suffixes = Counter()
    for d, fs in sorted(by_dir.items()):
        stems = _index(fs)
        masks = {}
        for f in fs:
            st = _stem(f)
            for s in MASK_SUFFIXES:
                if st.lower().endswith(s) and st[: -len(s)] in stems:
                    masks[f] = st[: -len(s)]
                    suffixes[s] += 1
                    break
        mask_index = _index(masks)
        for f in fs:
            if f in masks:
                continue
            mask = _mask_for(f, mask_index)
            out.samples.append(Sample(f, mask, _group(str(d.relative_to(root)))))
            out._mask_hint[f] = f"{d / _stem(f)}_mask.* and the like"
    if suffixes:
        out.layout = "masks beside images (" + ", ".join(f"'{s}'" for s, _ in suffixes.most_common()) + ")"
    else:
        out.layout = "images only (no masks found)"
    return out


def _from_mask_tree(root: Path, mask_root: Path) -> Pairing:
    if not mask_root.is_dir():
        raise DataError(f"{mask_root}: mask directory not found")
    skipped: list[Path] = []
    images = [f for f in _rasters(root, skipped) if mask_root not in f.parents]
    by_dir: dict[Path, dict] = {}
    mask_files = _rasters(mask_root, [])
    for m in mask_files:
        by_dir.setdefault(m.parent.relative_to(mask_root), {}).setdefault(_stem(m), []).append(m)
    out = Pairing(root, f"masks in {mask_root}", skipped=skipped)
    matched = set()
    for img in images:
        rel = img.parent.relative_to(root)
        mask = _mask_for(img, by_dir.get(rel, {}))
        matched.add(mask)
        out.samples.append(Sample(img, mask, _group(rel.parts[0] if rel.parts else "")))
        out._mask_hint[img] = f"{mask_root / rel / _stem(img)}.*"
    out.orphan_masks = [m for m in mask_files if m not in matched]
    _check_stems(out)
    return out


def read_csv_rows(path: Path, header: list[str], what: str) -> list[list[str]]:
    """The rows of a user's CSV file (pairs, split), without comments, blank lines and an
    optional header whose first columns are ``header``."""
    try:
        rows = [r for r in csv.reader(path.read_text().splitlines()) if r and not r[0].startswith("#")]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{path}: cannot read the {what} file ({type(e).__name__}: {e})") from None
    if rows and [c.strip().lower() for c in rows[0][:len(header)]] == header:
        rows = rows[1:]
    return rows


def _from_pairs_file(root: Path, path: Path) -> Pairing:
    rows = read_csv_rows(path, ["image", "mask"], "pairs")
    out = Pairing(root, f"pairs file {path}")
    for n, r in enumerate(rows, start=1):
        if len(r) not in (2, 3):
            raise DataError(f"{path}: line {n}: expected 'image,mask[,group]', got {len(r)} fields")
        img, mask = (root / r[0].strip()), (root / r[1].strip() if r[1].strip() else None)
        for f in (img, mask):
            if f is not None and not f.is_file():
                raise DataError(f"{path}: line {n}: {f}: file not found")
        if not img.resolve().is_relative_to(root.resolve()):  # '..' and links resolved; masks may live anywhere
            raise DataError(f"{path}: line {n}: {img}: is outside the data root {root}; a pairs file lists "
                            "images below it (relative paths, or absolute ones under it)")
        group = r[2].strip() if len(r) == 3 else _group(str(img.resolve().parent.relative_to(root.resolve())))
        out.samples.append(Sample(img, mask, group))
    if not out.samples:
        raise DataError(f"{path}: the pairs file lists no images")
    return out


def _check_stems(p: Pairing):
    """Two images of one folder with one stem (``x.jpg`` and ``x.png``) would write one output."""
    seen: dict[tuple, Path] = {}
    for s in p.samples:
        key = (s.image.parent, _stem(s.image))
        if key in seen:
            raise DataError(f"{s.image}: another image of its folder has the same name stem ({seen[key].name}); "
                            "rename one")
        seen[key] = s.image


def find_samples(root, require_masks: bool = True, masks=None, pairs=None) -> list[Sample]:
    """The labelled samples under ``root`` (every sample with ``require_masks=False``)."""
    return labelled_samples(pair_files(root, masks, pairs), require_masks)


def labelled_samples(p: Pairing, require_masks: bool = True) -> list[Sample]:
    """The samples of a pairing that have masks; an error when none has, or when some images
    of a folder lack theirs."""
    if not p.samples:
        raise DataError(f"{p.root}: empty dataset, no image files found "
                        "(layouts: 'Tile 1/images/x.jpg' + 'Tile 1/masks/x.png', 'images/' + 'masks/', "
                        "'data/N/' + 'labels/N/', 'x.tif' + 'x_mask.tif'; or pass --masks DIR / --pairs FILE)")
    if not require_masks:
        return p.samples
    p.check_complete()
    if not p.labelled:
        raise DataError(f"{p.root}: no image has a mask ({len(p.samples)} images, layout: {p.layout}); "
                        "pass --masks DIR (a tree of masks mirroring the images) or --pairs FILE")
    return p.labelled
