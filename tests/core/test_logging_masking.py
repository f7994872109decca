"""Citizens' phone and ID-card numbers never reach the logs in clear (regulation art. 8: privacy of citizens' data)."""
from __future__ import annotations

import io
import json
import logging

from core.logging import MaskingJsonFormatter, mask_pii


def test_mobile_number_keeps_only_prefix_and_last_four():
    assert mask_pii("我的电话13812345678，请回电") == "我的电话138****5678，请回电"


def test_id_card_number_is_masked_including_x_checksum():
    masked = mask_pii("身份证号11010519491231002X")
    assert "19491231" not in masked
    assert masked.endswith("002X")


def test_landline_and_work_order_numbers():
    assert mask_pii("座机010-62345678") == "座机010-****5678"
    # a work-order number is not personal data and must stay readable
    assert mask_pii("工单20261122-000123") == "工单20261122-000123"


def test_json_log_lines_mask_message_and_extra_fields():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(MaskingJsonFormatter())
    logger = logging.getLogger("test.masking")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.warning("citizen %s called", "13900001111", extra={"phone": "13900001111", "sender": "abc"})
    line = json.loads(stream.getvalue())
    assert "13900001111" not in stream.getvalue()
    assert line["msg"] == "citizen 139****1111 called"
    assert line["phone"] == "139****1111"
    assert line["sender"] == "abc"
