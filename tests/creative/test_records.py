import json

import pytest

from genads.creative.records import (
    RecordError,
    load_advertisegen,
    load_records,
    parse_attributes,
    record_from_dict,
    record_to_dict,
)

GOOD = {"product": {"id": "p1", "title": "Trail shoe", "description": "A shoe.",
                    "selling_points": ["waterproof", "light sole"], "image": "img/p1.png"},
        "history": [{"title": "Red running shoe", "image": "img/h1.png"}, {"title": "Blue cap"}],
        "target_title": "waterproof light sole"}


def test_jsonl_round_trip(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps(GOOD) + "\n\n" + json.dumps(GOOD) + "\n")
    report = load_records(path)
    assert len(report.records) == 2 and not report.errors
    rec = report.records[0]
    assert rec.product.image == tmp_path / "img/p1.png"
    assert rec.history[1].image is None
    assert record_to_dict(rec, tmp_path) == GOOD


def test_malformed_rows_name_file_line_and_field(tmp_path):
    bad = json.loads(json.dumps(GOOD))
    del bad["product"]["selling_points"]
    wrong_type = json.loads(json.dumps(GOOD))
    wrong_type["history"][0]["title"] = 3
    path = tmp_path / "r.jsonl"
    path.write_text("\n".join([json.dumps(GOOD), json.dumps(bad), "{not json", json.dumps(wrong_type)]) + "\n")
    with pytest.raises(RecordError) as e:
        load_records(path)
    assert e.value.line == 2 and e.value.field == "product.selling_points" and str(path) in str(e.value)
    report = load_records(path, on_error="skip")
    assert len(report.records) == 1
    assert [(err.line, err.field) for err in report.errors] == [(2, "product.selling_points"), (3, "<row>"),
                                                                 (4, "history[0].title")]
    assert "3 malformed" in report.summary()


def test_csv_loader(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("id,title,description,selling_points,image,history_titles,history_images,target_title\n"
                    "p1,Shoe,desc,waterproof|light sole,,Red shoe|Blue cap,a.png|b.png,light sole\n"
                    "p2,Cap,desc,,,,,\n"
                    "p3,Mug,desc,ceramic,,One|Two,a.png,\n")
    report = load_records(path, on_error="skip")
    assert [r.product.id for r in report.records] == ["p1"]
    assert report.records[0].product.selling_points == ("waterproof", "light sole")
    assert report.records[0].history[1].image == tmp_path / "b.png"
    assert [(e.line, e.field) for e in report.errors] == [(3, "product.selling_points"), (4, "history_images")]


def test_empty_selling_point_rejected():
    bad = json.loads(json.dumps(GOOD))
    bad["product"]["selling_points"] = ["ok", "  "]
    with pytest.raises(ValueError, match="selling_points"):
        record_from_dict(bad, base=None)


def test_advertisegen(tmp_path):
    path = tmp_path / "dev.json"
    lines = [{"content": "类型#上衣*颜色#白色*风格#简约*风格#简约", "summary": "简约的白色上衣。"},
             {"content": "类型#裙*颜色", "summary": "x"}, {"content": "类型#裙", "summary": ""}]
    path.write_text("\n".join(json.dumps(x, ensure_ascii=False) for x in lines) + "\n")
    examples, errors = load_advertisegen(path, on_error="skip")
    assert len(examples) == 1
    assert examples[0].selling_points == ("上衣", "白色", "简约")
    assert examples[0].copy == "简约的白色上衣。"
    assert [(e.line, e.field) for e in errors] == [(2, "content"), (3, "summary")]
    with pytest.raises(RecordError):
        load_advertisegen(path)


def test_parse_attributes():
    assert parse_attributes("a#b*c#d#e") == [("a", "b"), ("c", "d#e")]
    with pytest.raises(ValueError, match="key#value"):
        parse_attributes("a#b*c")
