"""``modalrec data build`` (a dataset folder from raw content) and ``modalrec features extract`` (one table)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from modalrec.cli.commands import device_value
from modalrec.errors import ConfigError

MODALITIES = ("image", "text", "video", "audio")
FORMATS = ("table", "amazon", "yelp", "movielens")


def add_build_parser(data_subparsers: Any) -> None:
    """Add ``build`` to the ``data`` command's subparsers."""
    from modalrec.data.build import DEFAULT_EXTRACTORS

    build = data_subparsers.add_parser(
        "build", help="build a dataset folder (MMRec layout, original ids kept) from interactions and item content",
        description="Extract features from item content (image/video/audio paths relative to the items file, "
                    "or text) and write a dataset folder that `modalrec train --data` reads.",
    )
    build.add_argument("--interactions", required=True, metavar="FILE",
                       help="interactions: CSV/TSV/Parquet (table), reviews JSON lines (amazon, yelp), u.data, "
                            "ratings.dat or interactions.csv (movielens)")
    build.add_argument("--items", required=True, metavar="FILE",
                       help="items: CSV/TSV/Parquet (table), metadata JSON lines (amazon), business.json (yelp), "
                            "u.item, movies.dat or items.csv (movielens)")
    build.add_argument("--out", required=True, metavar="DATASET_DIR", help="dataset folder to write")
    build.add_argument("--format", choices=FORMATS, default="table", help="layout of the input files (default table)")
    build.add_argument("--images", metavar="DIR", help="local pictures <item id>.jpg (amazon, movielens) or "
                                                        "<photo_id>.jpg (yelp)")
    build.add_argument("--photos", metavar="FILE", help="yelp photos.json (first photo of each business)")
    build.add_argument("--image-col", metavar="C", help="items column with image paths")
    build.add_argument("--text-cols", metavar="A,B", help="items columns with text, joined as 'A: x. B: y.'")
    build.add_argument("--video-col", metavar="C", help="items column with video paths")
    build.add_argument("--audio-col", metavar="C", help="items column with audio (or video) paths; may equal "
                                                         "--video-col to use the video's sound track")
    for modality in MODALITIES:
        build.add_argument(f"--{modality}-extractor", default=DEFAULT_EXTRACTORS[modality], metavar="NAME",
                           help=f"{modality} extractor (default {DEFAULT_EXTRACTORS[modality]}; "
                                "see `modalrec features list`)")
    build.add_argument("--set", dest="settings", action="append", default=[], metavar="MODALITY.KEY=VALUE",
                       help="an extractor setting, e.g. --set video.fps=2 or --set text.dim=32 (repeatable)")
    build.add_argument("--item-col", default="item_id", metavar="ID", help="item id column, both tables (table)")
    build.add_argument("--user-col", default="user_id", metavar="U", help="user id column (table)")
    build.add_argument("--rating-col", default="rating", metavar="R", help="rating column, used when present")
    build.add_argument("--timestamp-col", default="timestamp", metavar="T",
                       help="timestamp column (numbers or dates), used when present")
    build.add_argument("--split-col", default="", metavar="S",
                       help="0/1/2 (train/valid/test) column to keep (default x_label when present)")
    _extraction_arguments(build)
    build.add_argument("--overwrite", action="store_true",
                       help="replace DATASET_DIR even if it is not an earlier `modalrec data build` output")
    build.set_defaults(handler=_build)


def add_extract_parser(features_subparsers: Any) -> None:
    """Add ``extract`` to the ``features`` command's subparsers."""
    extract = features_subparsers.add_parser(
        "extract", help="run one extractor over an items table and write FILE.npy, FILE.ids.txt, FILE.missing.npy",
    )
    extract.add_argument("--items", required=True, metavar="FILE", help="items CSV/TSV/Parquet")
    extract.add_argument("--column", required=True, metavar="C",
                         help="content column (paths relative to the items file, or text); A,B joins text columns")
    extract.add_argument("--extractor", required=True, metavar="NAME", help="see `modalrec features list`")
    extract.add_argument("--out", required=True, metavar="FILE.npy", help="feature matrix, one row per item")
    extract.add_argument("--item-col", default="item_id", metavar="ID", help="item id column (default item_id)")
    extract.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=VALUE",
                         help="an extractor setting, e.g. --set fps=2 (repeatable)")
    extract.add_argument("--shard", metavar="I/N", help="extract only shard I of N (0-based, contiguous item "
                         "ranges), e.g. one per machine; join them with `modalrec features merge`")
    _extraction_arguments(extract)
    extract.set_defaults(handler=_extract)
    merge = features_subparsers.add_parser("merge", help="join the outputs of `features extract --shard` runs")
    merge.add_argument("shards", nargs="+", metavar="SHARD.npy", help="shard outputs, in shard order")
    merge.add_argument("--out", required=True, metavar="FILE.npy", help="the merged feature table to write")
    merge.set_defaults(handler=_merge)


def _extraction_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", type=device_value, default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    parser.add_argument("--cache", metavar="DIR", help="feature cache; unchanged content is not recomputed")
    parser.add_argument("--batch-size", type=int, default=32, metavar="N", help="items per batch (default 32)")
    parser.add_argument("--allow-outside", action="store_true",
                        help="read content paths that resolve outside the items file's folder")


def _options(args: argparse.Namespace, **extra: Any) -> Any:
    from modalrec.data.build import BuildOptions

    return BuildOptions(device=args.device, cache_dir=Path(args.cache) if args.cache else None,
                        batch_size=args.batch_size, allow_outside=args.allow_outside, **extra)


def _build(args: argparse.Namespace) -> int:
    from modalrec.data.build import TableColumns, build_dataset, modality_specs, read_raw_tables
    from modalrec.data.public import read_public

    interactions, items = Path(args.interactions), Path(args.items)
    if args.format == "table":
        if args.images or args.photos:
            raise ConfigError("--images", "applies to --format amazon, yelp or movielens, not table")
        columns = TableColumns(args.user_col, args.item_col, args.rating_col, args.timestamp_col, args.split_col)
        raw = read_raw_tables(interactions, items, columns)
    else:
        raw = read_public(args.format, interactions, items, images=Path(args.images) if args.images else None,
                          photos=Path(args.photos) if args.photos else None)
    content_columns = {"image": args.image_col, "text": args.text_cols, "video": args.video_col, "audio": args.audio_col}
    extractors = {modality: getattr(args, f"{modality}_extractor") for modality in MODALITIES}
    specs = modality_specs(raw, content_columns, extractors, parse_settings(args.settings, MODALITIES))
    report = build_dataset(raw, specs, Path(args.out), _options(args, overwrite=args.overwrite))
    print(report.summary())
    return 0


def _extract(args: argparse.Namespace) -> int:
    from modalrec.data.feature_files import extract_feature_file

    report = extract_feature_file(
        Path(args.items), [c.strip() for c in args.column.split(",") if c.strip()], args.extractor, Path(args.out),
        item_col=args.item_col, settings=parse_settings(args.settings, ()).get("", {}),
        shard=parse_shard(args.shard) if args.shard else None, options=_options(args),
    )
    print(report.summary())
    return 0


def parse_settings(pairs: list[str], modalities: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """``KEY=VALUE`` strings as nested dicts; a dotted key nests (``image_settings.image_size=64``).

    With ``modalities``, every key starts with one of them (``video.fps=2``) and the result is keyed by
    modality; otherwise everything lands under ``""``.
    """
    result: dict[str, dict[str, Any]] = {}
    for text in pairs:
        key, sep, value = text.partition("=")
        parts = [p.strip() for p in key.split(".")]
        if not sep or not all(parts):
            raise ConfigError(text, "expected --set KEY=VALUE")
        if modalities:
            if parts[0] not in modalities or len(parts) < 2:
                raise ConfigError(text, f"expected MODALITY.KEY=VALUE with MODALITY one of {', '.join(modalities)}")
            owner, parts = parts[0], parts[1:]
        else:
            owner = ""
        target = result.setdefault(owner, {})
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = value.strip()
    return result


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` -> (I, N) with 0 <= I < N."""
    index, _, count = text.partition("/")
    if not (index.isdigit() and count.isdigit()) or not 0 <= int(index) < int(count):
        raise ConfigError("--shard", f"expected I/N with 0 <= I < N, e.g. 0/4, got '{text}'")
    return int(index), int(count)


def _merge(args: argparse.Namespace) -> int:
    from modalrec.data.feature_files import merge_feature_files

    rows, dims = merge_feature_files([Path(shard) for shard in args.shards], Path(args.out))
    print(f"merged {len(args.shards)} shards into {args.out} ({rows} items x {dims})")
    return 0
