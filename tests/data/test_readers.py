"""Readers: MMRec layout, CSV/Parquet tables with feature files, MovieLens 100K/1M, and their errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modalrec.config import DataConfig
from modalrec.data import load_dataset
from modalrec.errors import DataFormatError
from tests.conftest import write_mmrec


def test_mmrec_layout_reads_ids_labels_and_modalities(tmp_path: Path) -> None:
    rows = [(0, 0, 0), (0, 2, 1), (1, 1, 0), (1, 2, 2)]
    feats = {"image": np.arange(12).reshape(3, 4), "text": np.ones((3, 2)), "audio": np.zeros((3, 1))}
    ds = load_dataset(write_mmrec(tmp_path, rows, features=feats))
    assert ds.num_users == 2 and ds.num_items == 3 and ds.num_interactions == 4
    assert ds.labels.tolist() == [0, 1, 0, 2]
    assert sorted(ds.features) == ["audio", "image", "text"]
    assert ds.features["image"].values[2].tolist() == [8, 9, 10, 11]
    assert ds.features["image"].values.dtype == np.float32


def test_mmrec_mapping_files_give_original_ids(tmp_path: Path) -> None:
    write_mmrec(tmp_path, [(0, 1, 0), (1, 0, 0)])
    (tmp_path / "u_id_mapping.csv").write_text("user_id\tuserID\nalice\t0\nbob\t1\n")
    (tmp_path / "i_id_mapping.csv").write_text("item_id\titemID\nB00X\t1\nA00Y\t0\nC00Z\t2\n")
    ds = load_dataset(tmp_path)
    assert list(ds.user_ids.external) == ["alice", "bob"]
    assert list(ds.item_ids.external) == ["A00Y", "B00X", "C00Z"]
    assert ds.num_items == 3  # C00Z has no interaction but stays in the catalogue


def test_feature_rows_beyond_interactions_are_cold_items(tmp_path: Path) -> None:
    ds = load_dataset(write_mmrec(tmp_path, [(0, 0, 0), (0, 1, 2)], features={"image": np.ones((5, 2))}))
    assert ds.num_items == 5


def test_table_csv_with_npy_and_parquet_features(tmp_path: Path) -> None:
    pd.DataFrame(
        {"uid": ["u1", "u1", "u2", "u2"], "sku": ["x", "y", "x", "z"], "stars": [5, 3, 4, 1], "ts": [1, 2, 3, 4]}
    ).to_csv(tmp_path / "log.csv", index=False)
    np.save(tmp_path / "img.npy", np.array([[1.0, 0.0], [0.0, 1.0], [9.0, 9.0]], dtype=np.float32))
    (tmp_path / "items.txt").write_text("y\nx\nw\n")
    pd.DataFrame({"item_id": ["z", "x"], "vector": [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]}).to_parquet(tmp_path / "t.parquet")
    config = DataConfig(
        user_col="uid", item_col="sku", rating_col="stars", timestamp_col="ts",
        features={"image": "img.npy", "text": "t.parquet"}, item_ids_file="items.txt",
    )
    ds = load_dataset(tmp_path / "log.csv", config)
    ids = list(ds.item_ids.external)
    assert ids[:3] == ["x", "y", "z"] and "w" in ids  # w only has features: a cold item
    image = ds.features["image"]
    assert image.values[ids.index("y")].tolist() == [1.0, 0.0]
    assert image.missing[ids.index("z")]  # z has no image row: filled with the mean and flagged
    assert image.values[ids.index("z")].tolist() == pytest.approx([10 / 3, 10 / 3])
    text = ds.features["text"]
    assert text.values[ids.index("x")].tolist() == [4.0, 5.0, 6.0]
    assert ds.ratings.tolist() == [5, 3, 4, 1]
    assert list(ds.user_ids.external) == ["u1", "u2"]


def test_parquet_interactions(tmp_path: Path) -> None:
    pd.DataFrame({"user_id": [1, 2], "item_id": [10, 20]}).to_parquet(tmp_path / "interactions.parquet")
    ds = load_dataset(tmp_path)
    assert ds.num_interactions == 2 and list(ds.item_ids.external) == ["10", "20"]


def test_movielens_100k(tmp_path: Path) -> None:
    (tmp_path / "u.data").write_text("1\t2\t5\t881250949\n2\t1\t3\t891717742\n1\t1\t4\t878887116\n")
    flags = "|".join(["0"] * 19)
    (tmp_path / "u.item").write_text(
        f"1|Toy Story (1995)|01-Jan-1995||http://x|{'0|0|0|1|1|1' + '|0' * 13}\n"
        f"2|GoldenEye (1995)|01-Jan-1995||http://x|{'0|1|1' + '|0' * 16}\n"
        f"3|Four Rooms (1995)|01-Jan-1995||http://x|{flags}\n",
        encoding="latin-1",
    )
    ds = load_dataset(tmp_path)
    assert ds.num_users == 2 and ds.num_items == 3 and ds.num_interactions == 3
    assert ds.features["genre"].values[0, 3] == 1  # Toy Story is Animation
    assert ds.features["text"].values.shape[0] == 3
    assert ds.timestamps[0] == 881250949


def test_movielens_1m(tmp_path: Path) -> None:
    (tmp_path / "ratings.dat").write_text("1::10::5::978300760\n1::20::3::978302109\n2::10::4::978301968\n")
    (tmp_path / "movies.dat").write_text("10::Heat (1995)::Action|Crime\n20::Sabrina (1995)::Comedy|Romance\n",
                                          encoding="latin-1")
    ds = load_dataset(tmp_path)
    assert ds.num_items == 2 and list(ds.item_ids.external) == ["10", "20"]
    assert ds.features["genre"].values.shape == (2, 4)


# -- errors -------------------------------------------------------------------------------------------

def error_for(path: Path, config: DataConfig | None = None) -> DataFormatError:
    with pytest.raises(DataFormatError) as info:
        load_dataset(path, config)
    return info.value


def test_missing_path(tmp_path: Path) -> None:
    err = error_for(tmp_path / "nope")
    assert "nope" in str(err) and "not found" in str(err)


def test_too_few_columns_names_the_line(tmp_path: Path) -> None:
    (tmp_path / "d.inter").write_text("userID\titemID\tx_label\n0\t1\t0\n1\t2\n")
    err = error_for(tmp_path)
    assert str(err) == f"{tmp_path / 'd.inter'}:3: expected 3 columns, found 2"


def test_non_numeric_id_names_line_and_column(tmp_path: Path) -> None:
    (tmp_path / "d.inter").write_text("userID\titemID\n0\t1\n0\tfive\n")
    err = error_for(tmp_path)
    assert err.line == 3 and err.field == "itemID" and "'five'" in str(err)


def test_too_many_columns(tmp_path: Path) -> None:
    (tmp_path / "d.inter").write_text("userID\titemID\n0\t1\n0\t1\t7\n")
    err = error_for(tmp_path)
    assert err.line == 3 and "expected 2 columns, found 3" in str(err)


def test_x_label_outside_0_1_2(tmp_path: Path) -> None:
    (tmp_path / "d.inter").write_text("userID\titemID\tx_label\n0\t1\t0\n0\t2\t3\n")
    err = error_for(tmp_path)
    assert err.line == 3 and err.field == "x_label" and "0 (train), 1 (valid) or 2 (test)" in str(err)


def test_feature_row_count_mismatch(tmp_path: Path) -> None:
    write_mmrec(tmp_path, [(0, 0, 0), (0, 4, 0)], features={"image": np.ones((3, 2))})
    err = error_for(tmp_path)
    assert "image_feat.npy" in str(err) and "3 rows" in str(err) and "at least 5" in str(err)


def test_feature_files_that_disagree(tmp_path: Path) -> None:
    write_mmrec(tmp_path, [(0, 0, 0)], features={"image": np.ones((3, 2)), "text": np.ones((4, 2))})
    assert "expected one row per item" in str(error_for(tmp_path))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_features(tmp_path: Path, bad: float) -> None:
    values = np.ones((2, 3))
    values[1, 2] = bad
    write_mmrec(tmp_path, [(0, 0, 0), (0, 1, 0)], features={"text": values})
    err = error_for(tmp_path)
    assert "text_feat.npy" in str(err) and "row 1, column 2" in str(err) and "finite" in str(err)


def test_empty_interaction_file(tmp_path: Path) -> None:
    (tmp_path / "d.inter").write_text("")
    assert "empty" in str(error_for(tmp_path))


def test_header_only_interaction_file(tmp_path: Path) -> None:
    (tmp_path / "d.inter").write_text("userID\titemID\n")
    assert "no interactions" in str(error_for(tmp_path))


def test_missing_required_column(tmp_path: Path) -> None:
    (tmp_path / "interactions.csv").write_text("user,item\n1,2\n")
    err = error_for(tmp_path)
    assert "missing column(s) user_id, item_id" in str(err) and err.line == 1


def test_npy_features_need_item_list(tmp_path: Path) -> None:
    (tmp_path / "interactions.csv").write_text("user_id,item_id\n1,2\n")
    np.save(tmp_path / "f.npy", np.ones((1, 2)))
    assert "item_ids_file" in str(error_for(tmp_path, DataConfig(features={"image": "f.npy"})))


def test_unreadable_npy(tmp_path: Path) -> None:
    write_mmrec(tmp_path, [(0, 0, 0)])
    (tmp_path / "image_feat.npy").write_bytes(b"not numpy")
    assert "not a readable .npy" in str(error_for(tmp_path))


def test_folder_without_known_files(tmp_path: Path) -> None:
    assert "cannot tell the dataset format" in str(error_for(tmp_path))


def test_duplicate_header_column(tmp_path: Path) -> None:
    (tmp_path / "interactions.csv").write_text("user_id,item_id,item_id\n1,2,3\n")
    err = error_for(tmp_path)
    assert err.line == 1 and "'item_id' appears more than once" in str(err)


def test_id_map_save_and_load_round_trip(tmp_path: Path) -> None:
    from modalrec.data import IdMap

    ids = IdMap.from_values(["007", "a,b", "ü", "12"])
    ids.save(tmp_path / "ids.csv", "item_id")
    assert list(IdMap.load(tmp_path / "ids.csv", "item_id").external) == ["007", "a,b", "ü", "12"]


def test_missing_content_mask_is_read_beside_features(tmp_path: Path) -> None:
    write_mmrec(tmp_path, [(0, 0, 0), (0, 1, 0), (0, 2, 2)], features={"image": np.ones((3, 2))})
    np.save(tmp_path / "image_missing.npy", np.array([False, True, False]))
    assert load_dataset(tmp_path).features["image"].missing.tolist() == [False, True, False]
    np.save(tmp_path / "image_missing.npy", np.array([0, 1]))
    assert "boolean array of shape (3,)" in str(error_for(tmp_path))
