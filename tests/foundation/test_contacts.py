"""Phone numbers and e-mail addresses as people type them: mainland mobile and landline numbers
are kept, anything else is refused with a message in Chinese (an SMS to 'abc' never arrives)."""
from __future__ import annotations

import httpx
import pytest

from foundation.contacts import check_phone
from foundation.errors import BadValue


@pytest.mark.parametrize("typed, kept", [
    ("13807370001", "13807370001"), ("138 0737 0001", "13807370001"), ("138-0737-0001", "13807370001"),
    ("+86 13807370001", "13807370001"), ("0737-4221234", "0737-4221234"), ("(0737)4221234", "(0737)4221234"),
    ("010 62345678", "01062345678"), ("0737-4221234-801", "0737-4221234-801"), ("", ""),
])
def test_mainland_numbers_are_kept(typed: str, kept: str) -> None:
    assert check_phone(typed) == kept


@pytest.mark.parametrize("typed", ["abc", "1380737000", "138073700012", "12807370001", "4221234", "0737-0221234", "110"])
def test_other_numbers_are_refused(typed: str) -> None:
    with pytest.raises(BadValue):
        check_phone(typed)


async def test_a_party_s_phone_number_is_checked_with_a_chinese_message(staff_client: httpx.AsyncClient) -> None:
    body = {"title": "噪音纠纷", "dispute_type": "neighbour",
            "parties": [{"name": "孙立", "side": "applicant", "phone": "abc"}]}
    refused = await staff_client.post("/api/disputes", json=body)
    assert refused.status_code == 422 and refused.json()["field"] == "parties.0.phone"
    assert refused.json()["message"] == "“abc”不是有效的电话号码：手机号为 1 开头的 11 位数字（如 13812345678），固定电话请带区号（如 0737-4221234）"
    english = await staff_client.post("/api/disputes?lang=en", json=body)
    assert "'abc' is not a phone number" in english.json()["error"]
    body["parties"][0]["phone"] = "138 0737 0001"
    created = await staff_client.post("/api/disputes", json=body)
    assert created.status_code == 201 and created.json()["parties"][0]["phone"] == "13807370001"
    dispute_id = created.json()["id"]
    party = await staff_client.post(f"/api/disputes/{dispute_id}/parties", json={"name": "周平", "side": "respondent", "phone": "12345"})
    assert party.status_code == 422 and "不是有效的电话号码" in party.json()["message"]
    expert = await staff_client.post("/api/experts", json={"name": "郑律师", "role": "lawyer", "email": "z@example.cn", "phone": "电话"})
    assert expert.status_code == 422 and expert.json()["field"] == "phone"
