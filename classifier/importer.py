"""Import labelled historical work orders (CSV or XLSX) as training rows, with row-level validation.

A hotline trains on its own history: a table with the request text and at least the first-level category, optionally
the request type, the second-level category and the handling-unit type. Column names are mapped (``--map
text=诉求内容``) or recognised from common names (``诉求内容``, ``留言详情``, ``一级分类``, ``承办单位类型`` …).

Every row is validated; a row with an invalid value is rejected and reported (file row number, column, value, reason
in Chinese), the valid rows are returned in the corpus format ``text, request_type, category_l1, category_l2,
unit_type`` (empty string = label unknown, masked in training).

CLI::

    python -m classifier.importer orders.xlsx --map text=诉求内容 --map category_l1=一级分类 --out rows.csv
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import unicodedata
from dataclasses import asdict, dataclass, field
from pathlib import Path

from dispatch.proposal import REQUEST_TYPES

from .labels import CATEGORY_L1, load_taxonomy, load_unit_types

FIELDS = ("text", "request_type", "category_l1", "category_l2", "unit_type")
# Recognised column names (lower-cased, spaces removed) per field, when no explicit mapping is given.
ALIASES: dict[str, tuple[str, ...]] = {
    "text": ("text", "content", "诉求内容", "留言详情", "留言内容", "工单内容", "来电内容", "内容", "问题描述", "诉求"),
    "request_type": ("request_type", "type", "诉求类型", "工单类型", "来电类型", "类型"),
    "category_l1": ("category_l1", "category", "label", "一级分类", "一级标签", "问题分类", "分类"),
    "category_l2": ("category_l2", "二级分类", "二级标签"),
    "unit_type": ("unit_type", "unit", "承办单位类型", "承办单位", "单位类型"),
}
REQUEST_TYPE_ALIASES = {"咨询类": "咨询", "求助类": "求助", "投诉类": "投诉", "举报类": "举报", "建议类": "建议", "表扬类": "表扬",
                        "意见建议": "建议", "感谢": "表扬", "求助求决": "求助"}


@dataclass(frozen=True)
class RowError:
    """One rejected row: ``row`` is the row number in the file (header = 1), ``message`` is Chinese."""

    row: int
    column: str
    value: str
    message: str

    def __str__(self) -> str:
        return f"第{self.row}行 [{self.column}] “{self.value[:30]}”：{self.message}"


@dataclass
class ImportResult:
    source: str
    columns: dict[str, str]          # field -> column name used
    rows: list[dict[str, str]] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    total: int = 0                   # data rows read (blank rows excluded)

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> dict:
        return {"source": self.source, "columns": self.columns, "total": self.total, "accepted": len(self.rows),
                "rejected": len({e.row for e in self.errors}), "errors": [asdict(e) for e in self.errors[:50]]}


class ImportFormatError(ValueError):
    """The file as a whole cannot be imported (unreadable, no text column …); ``message_zh`` says why."""

    def __init__(self, message_zh: str) -> None:
        super().__init__(message_zh)
        self.message_zh = message_zh


def _norm(s: object) -> str:
    return unicodedata.normalize("NFKC", "" if s is None else str(s)).strip()


def _key(s: str) -> str:
    return _norm(s).lower().replace(" ", "").replace("_", "")


def read_table(path: Path, sheet: str | None = None) -> tuple[list[str], list[list[str]]]:
    """Header and data rows of a CSV (UTF-8, UTF-8-BOM or GB18030) or XLSX file, all cells as strings."""
    path = Path(path)
    if not path.is_file():
        raise ImportFormatError(f"文件不存在：{path}")
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        import openpyxl

        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
        try:
            ws = wb[sheet] if sheet else wb.worksheets[0]
        except KeyError:
            raise ImportFormatError(f"工作表“{sheet}”不存在") from None
        table = [["" if c is None else str(c) for c in row] for row in ws.iter_rows(values_only=True)]
        wb.close()
    elif suffix in (".csv", ".txt", ".tsv"):
        raw = path.read_bytes()
        for enc in ("utf-8-sig", "gb18030"):
            try:
                text = raw.decode(enc)
                break
            except UnicodeDecodeError:
                continue
        else:
            raise ImportFormatError("无法识别文件编码（支持 UTF-8 与 GB18030）")
        delimiter = "\t" if suffix == ".tsv" else ","
        table = list(csv.reader(text.splitlines(), delimiter=delimiter))
    else:
        raise ImportFormatError(f"不支持的文件类型“{suffix}”（支持 CSV 与 XLSX）")
    while table and not any(_norm(c) for c in table[0]):
        table.pop(0)
    if not table:
        raise ImportFormatError("文件为空")
    return [_norm(c) for c in table[0]], table[1:]


def resolve_columns(header: list[str], mapping: dict[str, str] | None = None) -> dict[str, int]:
    """Column index per field: explicit ``mapping`` (field -> column name) first, then :data:`ALIASES`."""
    mapping = dict(mapping or {})
    unknown = set(mapping) - set(FIELDS)
    if unknown:
        raise ImportFormatError(f"未知字段：{'、'.join(sorted(unknown))}（可用：{'、'.join(FIELDS)}）")
    keys = [_key(h) for h in header]
    found: dict[str, int] = {}
    for fld, column in mapping.items():
        if _key(column) not in keys:
            raise ImportFormatError(f"找不到列“{column}”（表头：{'、'.join(header)}）")
        found[fld] = keys.index(_key(column))
    for fld in FIELDS:
        if fld in found:
            continue
        for alias in ALIASES[fld]:
            if _key(alias) in keys and keys.index(_key(alias)) not in found.values():
                found[fld] = keys.index(_key(alias))
                break
    if "text" not in found:
        raise ImportFormatError(f"找不到诉求内容列（表头：{'、'.join(header)}）；请用 --map text=列名 指定")
    return found


def import_work_orders(path: str | Path, mapping: dict[str, str] | None = None, *, segmented: bool = False,
                       require: tuple[str, ...] = ("text", "category_l1"), sheet: str | None = None,
                       min_text_chars: int = 4, max_text_chars: int = 5000,
                       taxonomy: set[tuple[str, str]] | None = None,
                       unit_types: dict[str, str] | None = None) -> ImportResult:
    """Read and validate a table of labelled work orders.

    Args:
        mapping: field -> column name (fields: text, request_type, category_l1, category_l2, unit_type).
        segmented: the text is word-segmented (tokens separated by spaces, e.g. jieba output); tokens are joined
            without spaces.
        require: fields every row must have (at least ``text``); other labels may be empty (unknown).
        taxonomy: (level1, level2) pairs a second-level category must belong to; ``None`` accepts any.
        unit_types: ``{code: name}``; a unit-type cell may hold the code or the name.
    """
    header, data = read_table(Path(path), sheet)
    cols = resolve_columns(header, mapping)
    missing = [f for f in require if f not in cols]
    if missing:
        raise ImportFormatError(f"缺少必需的列：{'、'.join(missing)}（表头：{'、'.join(header)}）")
    records = []
    for offset, raw in enumerate(data):
        if not any(_norm(c) for c in raw):
            continue
        records.append((offset + 2, {f: (raw[i] if i < len(raw) else "") for f, i in cols.items()}))
    return validate_records(records, {f: header[i] for f, i in cols.items()}, source=str(path),
                            segmented=segmented, require=require, min_text_chars=min_text_chars,
                            max_text_chars=max_text_chars, taxonomy=taxonomy, unit_types=unit_types)


def validate_records(records: list[tuple[int, dict]], columns: dict[str, str] | None = None, *, source: str = "",
                     segmented: bool = False, require: tuple[str, ...] = ("text",), min_text_chars: int = 4,
                     max_text_chars: int = 5000, taxonomy: set[tuple[str, str]] | None = None,
                     unit_types: dict[str, str] | None = None) -> ImportResult:
    """Validate ``(row number, {field: value})`` records (a table's rows, or dicts such as exported decisions)."""
    columns = dict(columns or {f: f for f in FIELDS})
    unit_types = unit_types if unit_types is not None else load_unit_types()
    unit_by_name = {_norm(name): code for code, name in unit_types.items()}
    for code, name in unit_types.items():  # "街道办事处/乡镇政府" -> each part
        for part in name.split("/"):
            unit_by_name.setdefault(_norm(part), code)
    result = ImportResult(source=source, columns=columns)
    col = lambda f: columns.get(f, f)  # noqa: E731
    for line, record in records:
        cells = {f: _norm(record.get(f)) for f in FIELDS if f in record}
        result.total += 1
        errors: list[RowError] = []
        text = cells.get("text", "")
        text = "".join(text.split()) if segmented else " ".join(text.split())
        if not text:
            errors.append(RowError(line, col("text"), "", "诉求内容为空"))
        elif len(text) < min_text_chars:
            errors.append(RowError(line, col("text"), text, f"诉求内容过短（少于{min_text_chars}个字）"))
        elif len(text) > max_text_chars:
            errors.append(RowError(line, col("text"), text[:30], f"诉求内容过长（超过{max_text_chars}个字）"))
        row = {"text": text, "request_type": "", "category_l1": "", "category_l2": "", "unit_type": ""}
        rt = cells.get("request_type", "")
        if rt:
            rt = REQUEST_TYPE_ALIASES.get(rt, rt)
            if rt in REQUEST_TYPES:
                row["request_type"] = rt
            else:
                errors.append(RowError(line, col("request_type"), rt,
                                       f"诉求类型无效（应为：{'、'.join(REQUEST_TYPES)}）"))
        l1 = cells.get("category_l1", "")
        if l1:
            if l1 in CATEGORY_L1:
                row["category_l1"] = l1
            else:
                errors.append(RowError(line, col("category_l1"), l1, "一级分类不在15个一级分类之中"))
        l2 = cells.get("category_l2", "")
        if l2:
            if "/" in l2:
                l2_l1, _, l2 = l2.partition("/")
                if row["category_l1"] and l2_l1 != row["category_l1"]:
                    errors.append(RowError(line, col("category_l2"), l2, "二级分类与一级分类不一致"))
            if not row["category_l1"]:
                errors.append(RowError(line, col("category_l2"), l2, "有二级分类时必须给出一级分类"))
            elif taxonomy and (row["category_l1"], l2) not in taxonomy:
                errors.append(RowError(line, col("category_l2"), l2,
                                       f"二级分类不属于一级分类“{row['category_l1']}”"))
            else:
                row["category_l2"] = l2
        unit = cells.get("unit_type", "")
        if unit:
            code = unit if unit in unit_types else unit_by_name.get(unit)
            if code is None and ":" in unit and unit.split(":")[0] in unit_types:  # a concrete unit code
                code = unit.split(":")[0]
            if code:
                row["unit_type"] = code
            else:
                errors.append(RowError(line, col("unit_type"), unit, "承办单位类型未知（应为单位类型代码或名称）"))
        for fld in require:
            if fld != "text" and not cells.get(fld):
                errors.append(RowError(line, col(fld), "", "必填项为空"))
        if errors:
            result.errors.extend(errors)
        else:
            result.rows.append(row)
    return result


def write_rows(rows: list[dict[str, str]], path: Path) -> None:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(FIELDS))
        writer.writeheader()
        for row in rows:
            writer.writerow({f: row.get(f, "") for f in FIELDS})


def parse_mapping(items: list[str] | None) -> dict[str, str]:
    out = {}
    for item in items or []:
        fld, sep, column = item.partition("=")
        if not sep:
            raise SystemExit(f"--map expects field=column, got {item!r}")
        out[fld.strip()] = column.strip()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Validate and import labelled work orders (CSV/XLSX) as training rows")
    ap.add_argument("path", type=Path)
    ap.add_argument("--map", action="append", metavar="FIELD=COLUMN", help="column mapping, repeatable")
    ap.add_argument("--segmented", action="store_true", help="text is word-segmented; join tokens")
    ap.add_argument("--sheet", help="XLSX worksheet name (default: the first)")
    ap.add_argument("--taxonomy", type=Path, help="taxonomy.csv to validate second-level categories")
    ap.add_argument("--out", type=Path, help="write the accepted rows as CSV")
    args = ap.parse_args(argv)
    try:
        res = import_work_orders(args.path, parse_mapping(args.map), segmented=args.segmented, sheet=args.sheet,
                                 taxonomy=load_taxonomy(args.taxonomy) or None)
    except ImportFormatError as exc:
        print(f"导入失败：{exc.message_zh}", file=sys.stderr)
        return 2
    if args.out:
        write_rows(res.rows, args.out)
    for err in res.errors[:20]:
        print(err, file=sys.stderr)
    print(json.dumps({k: v for k, v in res.summary().items() if k != "errors"}, ensure_ascii=False))
    return 0 if res.rows else 1


if __name__ == "__main__":
    sys.exit(main())
