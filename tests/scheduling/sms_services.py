"""Local stand-ins for the SMS services' HTTP APIs, as their documentation describes them: Alibaba
Cloud's SendSms (RPC style, V3 signature ACS3-HMAC-SHA256) and Tencent Cloud's SendSms (API 3.0,
TC3-HMAC-SHA256). Each checks the request's signature with the documented algorithm, the sign
name, the template and its variables, and answers as the service does: an id for a message it
takes, its error codes for one it refuses. The code under test talks to them through the
services' official SDKs, unchanged; only the address differs."""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qsl, quote

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.conftest import free_port

KEY_ID, KEY_SECRET = "LTAI5tTiaojieTest", "office-secret-kept-out-of-git"
SIGN_NAME, APP_ID = "金山警务室", "1400787878"


@dataclasses.dataclass
class Service:
    """What a stand-in was sent and how it answers: approved templates (code: variables), numbers
    it refuses with a code, and the messages it took."""

    templates: dict[str, tuple[str, ...]]
    refuse: dict[str, str] = dataclasses.field(default_factory=dict)
    sent: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    url: str = ""


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def _fields(header: str, scheme: str) -> dict[str, str]:
    parts = header.removeprefix(scheme).replace(" ", "").split(",")
    return dict(part.split("=", 1) for part in parts if "=" in part)


def aliyun(service: Service) -> Starlette:
    """Alibaba Cloud SMS, SendSms."""

    async def send(request: Request) -> JSONResponse:
        body = await request.body()
        auth = _fields(request.headers.get("authorization", ""), "ACS3-HMAC-SHA256")
        if auth.get("Credential") != KEY_ID:
            return JSONResponse({"Code": "InvalidAccessKeyId.NotFound", "Message": "Specified access key is not found."}, 404)
        signed = auth["SignedHeaders"].split(";")
        query = sorted(parse_qsl(request.url.query, keep_blank_values=True))
        canonical = "\n".join([
            request.method, "/", "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in query),
            "".join(f"{name}:{request.headers[name].strip()}\n" for name in signed), auth["SignedHeaders"],
            _sha256(body),
        ])
        expected = hmac.new(KEY_SECRET.encode(), f"ACS3-HMAC-SHA256\n{_sha256(canonical.encode())}".encode(),
                            hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, auth.get("Signature", "")):
            return JSONResponse({"Code": "SignatureDoesNotMatch", "Message": "Specified signature is not matched with our calculation."}, 400)
        fields = dict(query)
        if request.headers.get("x-acs-action") != "SendSms" or fields.get("SignName") != SIGN_NAME:
            return JSONResponse({"Code": "isv.SMS_SIGNATURE_ILLEGAL", "Message": "签名不合法"})
        variables = service.templates.get(fields.get("TemplateCode", ""))
        if variables is None:
            return JSONResponse({"Code": "isv.SMS_TEMPLATE_ILLEGAL", "Message": "模板不合法"})
        params = json.loads(fields.get("TemplateParam") or "{}")
        if set(variables) - params.keys():
            return JSONResponse({"Code": "isv.TEMPLATE_MISSING_PARAMETERS", "Message": "模板缺少变量"})
        phone = fields.get("PhoneNumbers", "")
        if phone in service.refuse:
            return JSONResponse({"Code": service.refuse[phone], "Message": "refused"})
        service.sent.append({"phone": phone, "template": fields["TemplateCode"], "params": params})
        return JSONResponse({"Code": "OK", "Message": "OK", "BizId": f"{900000 + len(service.sent)}^0", "RequestId": "x"})

    return Starlette(routes=[Route("/", send, methods=["POST"])])


def tencent(service: Service) -> Starlette:
    """Tencent Cloud SMS, SendSms 2021-01-11."""

    def error(code: str, message: str) -> JSONResponse:
        return JSONResponse({"Response": {"Error": {"Code": code, "Message": message}, "RequestId": "x"}})

    async def send(request: Request) -> JSONResponse:
        body = await request.body()
        auth = _fields(request.headers.get("authorization", ""), "TC3-HMAC-SHA256")
        key_id, date, product, _ = (auth.get("Credential", "") + "////").split("/", 3)
        if key_id != KEY_ID:
            return error("AuthFailure.SecretIdNotFound", "The SecretId is not found")
        signed = auth["SignedHeaders"].split(";")
        canonical = "\n".join([
            "POST", "/", "", "".join(f"{name}:{request.headers[name].strip().lower()}\n" for name in signed),
            auth["SignedHeaders"], _sha256(body),
        ])
        timestamp = request.headers["x-tc-timestamp"]
        scope = f"{date}/{product}/tc3_request"
        key = _hmac(_hmac(_hmac(f"TC3{KEY_SECRET}".encode(), date), product), "tc3_request")
        expected = hmac.new(key, f"TC3-HMAC-SHA256\n{timestamp}\n{scope}\n{_sha256(canonical.encode())}".encode(),
                            hashlib.sha256).hexdigest()
        day = dt.datetime.fromtimestamp(int(timestamp), dt.timezone.utc).strftime("%Y-%m-%d")
        if not hmac.compare_digest(expected, auth.get("Signature", "")) or day != date or product != "sms":
            return error("AuthFailure.SignatureFailure", "The provided credentials could not be validated.")
        fields = json.loads(body)
        if fields.get("SmsSdkAppId") != APP_ID or request.headers.get("x-tc-action") != "SendSms":
            return error("FailedOperation.SmsSdkAppIdVerifyFail", "SmsSdkAppId 校验失败")
        if fields.get("SignName") != SIGN_NAME:
            return error("FailedOperation.SignatureIncorrectOrUnapproved", "签名未审批或格式错误")
        variables = service.templates.get(fields.get("TemplateId", ""))
        if variables is None:
            return error("FailedOperation.TemplateIncorrectOrUnapproved", "模板未审批或内容不匹配")
        if len(fields.get("TemplateParamSet") or []) != len(variables):
            return error("InvalidParameterValue.TemplateParameterFormatError", "模板参数个数不匹配")
        statuses = []
        for number in fields["PhoneNumberSet"]:
            phone = number.removeprefix("+86")
            if phone in service.refuse:
                statuses.append({"SerialNo": "", "PhoneNumber": number, "Code": service.refuse[phone], "Message": "refused"})
                continue
            service.sent.append({"phone": phone, "template": fields["TemplateId"],
                                 "params": dict(zip(variables, fields["TemplateParamSet"]))})
            statuses.append({"SerialNo": f"2645:{len(service.sent)}", "PhoneNumber": number, "Code": "Ok",
                             "Message": "send success", "Fee": 1, "SessionContext": "", "IsoCode": "CN"})
        return JSONResponse({"Response": {"SendStatusSet": statuses, "RequestId": "x"}})

    return Starlette(routes=[Route("/", send, methods=["POST"])])


@contextlib.asynccontextmanager
async def running(app: Starlette, service: Service) -> AsyncIterator[Service]:
    """The stand-in served on a loopback port for the duration; its address in `service.url`."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    service.url = f"http://127.0.0.1:{port}"
    try:
        yield service
    finally:
        server.should_exit = True
        await task
