"""Release tool: embed each shipped LiteRT file's sidecar spec in the file itself (the
``satseg.spec`` metadata entry that `satseg export` writes since the spec travelled in the file;
the files shipped before carry only the sidecar), and bring the specs of fixed-size files up to
what `satseg export` now writes (``satseg.classes.fixed_file_spec``: tiling and the min-max rule),
sidecar and file alike. The graph and weights are unchanged, so every score stays; the files change
by the spec's bytes, and each export's report.json is updated with the new size. Run
tools/model_cards.py afterwards (sizes, the packaged default model).

    python tools/embed_specs.py --dry-run
    python tools/embed_specs.py
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from satseg.atomic import atomic_write, atomic_write_text
from satseg.classes import check_spec_doc, fixed_file_spec, read_spec, save_spec
from satseg.tflite_metadata import embedded_spec, with_spec

ROOT = Path(__file__).resolve().parents[1]


def whole_image(tfl: Path) -> bool:
    """Whether a LiteRT file is a whole-image one: its output is (1, H, W) class ids."""
    from ai_edge_litert.interpreter import Interpreter

    return len(Interpreter(model_path=str(tfl)).get_output_details()[0]["shape_signature"]) == 3


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", type=Path, default=ROOT / "exported_models")
    ap.add_argument("--dry-run", action="store_true", help="say which files would change; write nothing")
    args = ap.parse_args(argv)
    changed = 0
    for tfl in sorted(args.models.glob("*/*.tflite")):
        sidecar = tfl.with_name(tfl.stem + ".satseg.json")
        if not sidecar.exists():
            continue
        spec = read_spec(sidecar)
        if not whole_image(tfl):
            spec = fixed_file_spec(spec)
        inside = embedded_spec(tfl)
        if inside is not None and check_spec_doc(inside, tfl) == spec and read_spec(sidecar) == spec:
            continue
        doc = spec.to_dict()
        data = with_spec(tfl.read_bytes(), doc)
        changed += 1
        print(f"{'would embed' if args.dry_run else 'embedded'}  {tfl.relative_to(ROOT)}  "
              f"{tfl.stat().st_size} -> {len(data)} bytes")
        if args.dry_run:
            continue
        atomic_write(tfl, lambda p, d=data: p.write_bytes(d))
        save_spec(spec, sidecar)
        report = tfl.parent / "report.json"
        if report.exists():
            r = json.loads(report.read_text())
            for a in r.get("artifacts", []):
                if a.get("path") == tfl.name:
                    a["bytes"] = len(data)
            atomic_write_text(report, json.dumps(r, indent=2))
    if not changed:
        print(f"nothing to embed: every LiteRT file under {args.models} carries its sidecar's spec")


if __name__ == "__main__":
    main()
