"""Text messages through the SMS services Chinese offices use: Alibaba Cloud SMS (阿里云短信) and
Tencent Cloud SMS (腾讯云短信), with their official SDKs, which sign each request.

Both send only templates approved in their consoles: the office's sign name (签名) and, for each
kind of message, a template whose variables Tiaojie fills. `TIAOJIE_SMS_TEMPLATES` names them,
`kind=CODE/var/var...`, e.g. `invite=SMS_4501/name/time/link`; the variables a template may use
are `VARIABLES` (Alibaba Cloud takes them by name, Tencent Cloud in the order given). A failure is
an `SmsError` with a reason in Chinese that the outbox keeps; success returns the service's
message id (BizId, SerialNo), kept on the outbox row as the receipt.
"""
from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Any, Protocol

from foundation.config import Settings

# What a template can use: the person's name, the session's time, their link, the office's name,
# the dispute's title, and the days left to confirm an agreement.
VARIABLES = ("name", "time", "link", "office", "title", "days", "code")

# The services' error codes that an office can act on, in Chinese (anything else: its own message).
REASONS = {
    # Alibaba Cloud (SendSms Code)
    "isv.MOBILE_NUMBER_ILLEGAL": "手机号码格式错误",
    "isv.BUSINESS_LIMIT_CONTROL": "发送过于频繁（触发短信平台流控），请稍后重试",
    "isv.DAY_LIMIT_CONTROL": "该号码当日短信已达上限",
    "isv.AMOUNT_NOT_ENOUGH": "短信账户余额不足，请充值",
    "isv.OUT_OF_SERVICE": "短信账户已停机（余额不足），请充值",
    "isv.SMS_SIGNATURE_ILLEGAL": "短信签名不可用（不存在或未审核通过）",
    "isv.SMS_SIGN_ILLEGAL": "短信签名不可用（不存在或未审核通过）",
    "isv.SMS_TEMPLATE_ILLEGAL": "短信模板不可用（不存在或未审核通过）",
    "isv.TEMPLATE_MISSING_PARAMETERS": "短信模板的变量缺失，请核对模板变量设置",
    "isv.INVALID_JSON_PARAM": "短信模板变量格式错误",
    "isv.PARAM_LENGTH_LIMIT": "短信模板变量超出长度限制",
    "isv.DENY_IP_RANGE": "服务器的 IP 地址不在短信平台白名单内",
    "InvalidAccessKeyId.NotFound": "短信平台的 AccessKey 不存在，请核对配置",
    "SignatureDoesNotMatch": "短信平台的 AccessKey Secret 不正确，请核对配置",
    # Tencent Cloud (SendStatus Code, or the request's Error Code)
    "InvalidParameterValue.IncorrectPhoneNumber": "手机号码格式错误",
    "LimitExceeded.PhoneNumberDailyLimit": "该号码当日短信已达上限",
    "LimitExceeded.PhoneNumberThirtySecondLimit": "发送过于频繁，请稍后重试",
    "LimitExceeded.PhoneNumberOneHourLimit": "发送过于频繁，请稍后重试",
    "FailedOperation.InsufficientBalanceInSmsPackage": "短信套餐包余量不足，请购买",
    "FailedOperation.SignatureIncorrectOrUnapproved": "短信签名不可用（不存在或未审核通过）",
    "FailedOperation.TemplateIncorrectOrUnapproved": "短信模板不可用（不存在或未审核通过）",
    "FailedOperation.ContainSensitiveWord": "短信内容含平台不允许的词语",
    "InvalidParameterValue.TemplateParameterFormatError": "短信模板变量格式错误",
    "InvalidParameterValue.TemplateParameterLengthLimit": "短信模板变量超出长度限制",
    "AuthFailure.SecretIdNotFound": "短信平台的 SecretId 不存在，请核对配置",
    "AuthFailure.SignatureFailure": "短信平台的 SecretKey 不正确，请核对配置",
}


class SmsError(OSError):
    """A message the service did not take: the reason in Chinese, and the service's code."""

    def __init__(self, reason: str, code: str = "") -> None:
        super().__init__(f"{reason}（{code}）" if code else reason)
        self.code = code


def failure(code: str, message: str) -> SmsError:
    """The error for a service's code and message."""
    return SmsError(REASONS.get(code, f"短信平台拒绝发送：{message}"), code)


@dataclasses.dataclass(frozen=True)
class Template:
    """An approved template: its code at the service, and the variables it takes, in order."""

    code: str
    variables: tuple[str, ...]


def templates(settings: Settings) -> dict[str, Template]:
    """The templates by kind of message, from TIAOJIE_SMS_TEMPLATES (`kind=CODE/var/var`)."""
    found: dict[str, Template] = {}
    for entry in settings.sms_templates:
        kind, _, rest = entry.partition("=")
        code, *variables = rest.split("/")
        unknown = [v for v in variables if v not in VARIABLES]
        if not kind or not code or unknown:
            raise ValueError(f"TIAOJIE_SMS_TEMPLATES: cannot read {entry!r} (kind=CODE/var/var; variables: {', '.join(VARIABLES)})")
        found[kind.strip()] = Template(code.strip(), tuple(variables))
    return found


class SmsGateway(Protocol):
    """A way to send text messages: one message to one phone, by template."""

    async def send(self, phone: str, kind: str, params: dict[str, str]) -> str:
        """Send one message; its id at the service, or SmsError."""


class _Service:
    """What both services share: the templates, and running the SDK's blocking call in a thread."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.templates = templates(settings)

    def template(self, kind: str) -> Template:
        if kind not in self.templates:
            raise SmsError(f"没有为“{kind}”类消息配置短信模板（TIAOJIE_SMS_TEMPLATES）", "no_template")
        return self.templates[kind]

    async def send(self, phone: str, kind: str, params: dict[str, str]) -> str:
        template = self.template(kind)
        values = [str(params.get(name, "")) for name in template.variables]
        return await asyncio.to_thread(self._send, phone, template, values)

    def _send(self, phone: str, template: Template, values: list[str]) -> str:
        raise NotImplementedError


class AliyunSms(_Service):
    """Alibaba Cloud SMS (dysmsapi 2017-05-25, SendSms), template variables by name."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        from alibabacloud_dysmsapi20170525.client import Client
        from alibabacloud_tea_openapi.models import Config

        endpoint = settings.sms_endpoint or "dysmsapi.aliyuncs.com"
        scheme, _, host = endpoint.rpartition("://")
        self.client = Client(Config(
            access_key_id=settings.sms_key_id, access_key_secret=settings.sms_key_secret,
            endpoint=host, protocol=scheme or "https", region_id=settings.sms_region or "cn-hangzhou",
            read_timeout=10_000, connect_timeout=5_000,
        ))

    def _send(self, phone: str, template: Template, values: list[str]) -> str:
        from alibabacloud_dysmsapi20170525.models import SendSmsRequest
        from alibabacloud_tea_openapi.exceptions import AlibabaCloudException

        request = SendSmsRequest(
            phone_numbers=phone, sign_name=self.settings.sms_sign_name, template_code=template.code,
            template_param=json.dumps(dict(zip(template.variables, values)), ensure_ascii=False),
        )
        try:
            body = self.client.send_sms(request).body
        except AlibabaCloudException as exc:  # refused: keys, signature, IP, throttling
            raise failure(str(exc.code), str(exc.message)) from None
        except Exception as exc:  # the SDK's own errors for a network failure
            raise SmsError(f"无法连接短信平台：{exc}") from None
        if body.code != "OK":
            raise failure(body.code or "", body.message or "")
        return str(body.biz_id)


class TencentSms(_Service):
    """Tencent Cloud SMS (API 3.0, 2021-01-11 SendSms), template variables in order."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        from tencentcloud.common.credential import Credential
        from tencentcloud.common.profile.client_profile import ClientProfile
        from tencentcloud.common.profile.http_profile import HttpProfile
        from tencentcloud.sms.v20210111.sms_client import SmsClient

        endpoint = settings.sms_endpoint or "sms.tencentcloudapi.com"
        scheme, _, host = endpoint.rpartition("://")
        http = HttpProfile(protocol=scheme or "https", endpoint=host, reqTimeout=10)
        self.client = SmsClient(Credential(settings.sms_key_id, settings.sms_key_secret),
                                settings.sms_region or "ap-guangzhou", ClientProfile(httpProfile=http))

    def _send(self, phone: str, template: Template, values: list[str]) -> str:
        from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
        from tencentcloud.sms.v20210111.models import SendSmsRequest

        request = SendSmsRequest()
        request.PhoneNumberSet = [f"+86{phone}" if not phone.startswith("+") else phone]
        request.SmsSdkAppId = self.settings.sms_app_id
        request.SignName = self.settings.sms_sign_name
        request.TemplateId = template.code
        request.TemplateParamSet = values
        try:
            status: Any = self.client.SendSms(request).SendStatusSet[0]
        except TencentCloudSDKException as exc:
            if exc.code == "ClientNetworkError":
                raise SmsError(f"无法连接短信平台：{exc.message}") from None
            raise failure(str(exc.code), str(exc.message)) from None
        if status.Code != "Ok":
            raise failure(status.Code, status.Message)
        return str(status.SerialNo)


PROVIDERS = {"aliyun": AliyunSms, "tencent": TencentSms}


def gateway(settings: Settings) -> SmsGateway | None:
    """The SMS service the settings choose (TIAOJIE_SMS_PROVIDER), or None: SMS are recorded, not sent."""
    if not settings.sms_provider:
        return None
    if settings.sms_provider not in PROVIDERS:
        raise ValueError(f"TIAOJIE_SMS_PROVIDER must be one of {', '.join(PROVIDERS)}, not {settings.sms_provider!r}")
    return PROVIDERS[settings.sms_provider](settings)
