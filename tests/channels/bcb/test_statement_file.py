"""Reading a BCB statement file (docs/banks/bcb.md "Statement"): streaming, columns by header name,
yuan to fen exactly, and the trailer's totals checked once the last line has been read."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from tianpay.channels.bcb.statement import read_statement, yuan_to_fen
from tianpay.ports.statements import StatementItemKind, StatementMalformed

STATEMENT = """#滨海商业银行代收付对账单
#商户号：[200604000000001]
#----业务明细列表----
流水号,商户请求号,业务类型,账号,户名,金额(元),手续费(元),完成时间
BCBatt_1,att_1,代收,623099*********0017,王芳,123.45,0.19,2026-11-27 10:00:00
BCBP:pob_1:pyo_1,pyo_1,代付,623099*********0017,王芳,-10.00,0.50,2026-11-27 11:00:00
#----业务明细列表结束----
#总笔数：[2]
#总金额(元)：[113.45]
#总手续费(元)：[{fee}]
"""


def test_a_file_whose_lines_do_not_add_up_to_its_totals_is_refused_once_read_to_the_end(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.csv", tmp_path / "bad.csv"
    good.write_bytes(STATEMENT.format(fee="0.69").encode("gbk"))
    bad.write_bytes(STATEMENT.format(fee="0.70").encode("gbk"))
    lines = list(read_statement(good, date(2026, 11, 27)))
    assert [(line.kind, line.amount_minor, line.fee_minor, line.platform_ref) for line in lines] == [
        (StatementItemKind.COLLECTION, 12_345, 19, "att_1"), (StatementItemKind.PAYOUT, -1_000, 50, "pyo_1")
    ]
    assert lines[0].occurred_at == datetime(2026, 11, 27, 2, 0, tzinfo=UTC)
    reader = read_statement(bad, date(2026, 11, 27))
    assert next(reader).platform_ref == "att_1"
    with pytest.raises(StatementMalformed):
        list(reader)


def test_a_file_without_its_header_columns_or_with_an_inexact_amount_is_malformed(tmp_path: Path) -> None:
    renamed = tmp_path / "renamed.csv"
    renamed.write_bytes(STATEMENT.format(fee="0.69").replace("手续费(元)", "费用").encode("gbk"))
    with pytest.raises(StatementMalformed):
        list(read_statement(renamed, date(2026, 11, 27)))
    assert yuan_to_fen("-0.07") == -7
    for inexact in ("1.5", "1.234", "1e3", "¥1.00"):
        with pytest.raises(StatementMalformed):
            yuan_to_fen(inexact)
