"""Importing labelled historical work orders: column mapping, aliases, XLSX, row-level validation errors."""
from __future__ import annotations

import csv

import openpyxl
import pytest

from classifier.importer import ImportFormatError, import_work_orders, main, validate_records
from classifier.labels import load_taxonomy


def write_csv(path, header, rows, encoding="utf-8"):
    with open(path, "w", encoding=encoding, newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def test_mapping_and_row_level_errors(tmp_path):
    path = write_csv(tmp_path / "orders.csv", ["工单编号", "来电内容", "分类一级", "类型", "单位"], [
        ["1", "小区门口的饭馆油烟太大，熏得没法开窗", "环境保护", "投诉", "urban_enforcement"],
        ["2", "", "城乡建设", "求助", "heating_company"],                       # empty text
        ["3", "暖气不热，家里才十五度", "城建", "求助", "heating_company"],          # unknown category
        ["4", "公交车到站不停，司机态度很差", "交通运输", "骂人", "transit_company"],   # unknown type
        ["5", "路灯坏了一个月没人修", "城乡建设", "投诉", "路灯办"],                  # unknown unit type
        ["6", "楼道堆满杂物有火灾隐患", "城乡建设", "投诉类", "街道办事处"],           # alias type + unit by name
        ["", "", "", "", ""],                                                    # blank row: ignored
    ])
    res = import_work_orders(path, {"text": "来电内容", "category_l1": "分类一级", "request_type": "类型",
                                    "unit_type": "单位"})
    assert res.total == 6
    assert [r["text"][:4] for r in res.rows] == ["小区门口", "楼道堆满"]
    assert res.rows[1]["request_type"] == "投诉" and res.rows[1]["unit_type"] == "street_office"
    by_row = {e.row: e for e in res.errors}
    assert set(by_row) == {3, 4, 5, 6}  # file rows (header = row 1)
    assert "诉求内容为空" in by_row[3].message
    assert by_row[4].column == "分类一级" and by_row[4].value == "城建"
    assert "诉求类型无效" in by_row[5].message
    assert "承办单位类型未知" in by_row[6].message
    assert "第4行" in str(by_row[4])
    summary = res.summary()
    assert summary["accepted"] == 2 and summary["rejected"] == 4


def test_aliases_gb18030_and_required_columns(tmp_path):
    path = write_csv(tmp_path / "gbk.csv", ["诉求内容", "一级分类"], [["孩子学校乱收补课费", "教育文体"]],
                     encoding="gb18030")
    res = import_work_orders(path)
    assert res.columns == {"text": "诉求内容", "category_l1": "一级分类"}
    assert res.rows == [{"text": "孩子学校乱收补课费", "request_type": "", "category_l1": "教育文体",
                         "category_l2": "", "unit_type": ""}]
    with pytest.raises(ImportFormatError) as exc:
        import_work_orders(write_csv(tmp_path / "x.csv", ["编号", "备注"], [["1", "无"]]))
    assert "找不到诉求内容列" in exc.value.message_zh
    with pytest.raises(ImportFormatError):
        import_work_orders(path, {"text": "不存在的列"})
    with pytest.raises(ImportFormatError):
        import_work_orders(write_csv(tmp_path / "y.csv", ["内容"], [["只有内容没有分类"]]))  # category required


def test_xlsx_and_segmented_text(tmp_path):
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "历史工单"
    ws.append(["留言详情", "label", "二级分类"])
    ws.append(["小区 暖气 不热 温度 只有 十五度", "城乡建设", "城市建设和市政管理"])
    ws.append(["菜市场 卖 注水肉", "商贸旅游", "不存在的二级"])
    wb.save(tmp_path / "orders.xlsx")
    taxonomy = {("城乡建设", "城市建设和市政管理"), ("商贸旅游", "市场监管")}
    res = import_work_orders(tmp_path / "orders.xlsx", segmented=True, sheet="历史工单", taxonomy=taxonomy)
    assert res.rows[0]["text"] == "小区暖气不热温度只有十五度"
    assert res.rows[0]["category_l2"] == "城市建设和市政管理"
    assert len(res.errors) == 1 and "二级分类不属于" in res.errors[0].message
    with pytest.raises(ImportFormatError):
        import_work_orders(tmp_path / "orders.xlsx", sheet="没有这个表")


def test_validate_records_for_exported_rows():
    res = validate_records([(1, {"text": "井盖丢了很危险", "unit_type": "street_office:110105026",
                                 "category_l1": "城乡建设", "request_type": ""}),
                            (2, {"text": "好", "category_l1": "城乡建设"})], min_text_chars=2)
    assert res.rows[0]["unit_type"] == "street_office" and res.rows[0]["request_type"] == ""
    assert res.errors[0].row == 2


def test_cli_writes_accepted_rows(tmp_path, capsys):
    src = write_csv(tmp_path / "in.csv", ["text", "category"], [["地铁站电梯坏了好几天", "交通运输"],
                                                              ["乱七八糟", "不知道"]])
    assert main([str(src), "--out", str(tmp_path / "out.csv")]) == 0
    out = list(csv.DictReader(open(tmp_path / "out.csv", encoding="utf-8")))
    assert out == [{"text": "地铁站电梯坏了好几天", "request_type": "", "category_l1": "交通运输",
                    "category_l2": "", "unit_type": ""}]
    assert "第3行" in capsys.readouterr().err


def test_taxonomy_reader(tmp_path):
    path = write_csv(tmp_path / "t.csv", ["level1", "level2", "level3"], [["城乡建设", "安全生产", "事故处理"]])
    assert load_taxonomy(path) == {("城乡建设", "安全生产")}
    assert load_taxonomy(tmp_path / "missing.csv") == set()
