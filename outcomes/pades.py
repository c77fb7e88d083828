"""The office's digital signature on its PDFs (PAdES, with pyHanko), and checking one.

Each office has an ECDSA P-256 key and a certificate: made for it the first time it signs, or
imported from a certificate authority the office uses (`tiaojie office-key import`). The key is
kept in the database encrypted with the server's secret key. Any PDF reader shows the signature,
and any change to the file after signing breaks it (`verify`, `tiaojie verify FILE`).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import io

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.x509.oid import NameOID

FIELD = "OfficeSeal"
YEARS = 10


def _password(secret: str) -> bytes:
    return secret.encode() or b"tiaojie"


def new_key(office_name: str, secret: str) -> tuple[str, str]:
    """A new key (PEM, encrypted with the server's secret) and its self-signed certificate."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, office_name[:64]),
                      x509.NameAttribute(NameOID.COMMON_NAME, f"{office_name[:50]} 电子签章")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=365 * YEARS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=True, key_cert_sign=True,
                                     crl_sign=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .sign(key, hashes.SHA256())
    )
    return _encrypted(key, secret), cert.public_bytes(serialization.Encoding.PEM).decode()


def _encrypted(key: PrivateKeyTypes, secret: str) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(_password(secret)),
    ).decode()


def import_key(key_pem: bytes, cert_pem: bytes, password: bytes | None, secret: str) -> tuple[str, str]:
    """An office's own key and certificate (PEM), checked to belong together; ValueError otherwise."""
    key = serialization.load_pem_private_key(key_pem, password=password)
    cert = x509.load_pem_x509_certificate(cert_pem)
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(serialization.Encoding.PEM, public) != \
            cert.public_key().public_bytes(serialization.Encoding.PEM, public):
        raise ValueError("the certificate is not the key's")
    return _encrypted(key, secret), cert.public_bytes(serialization.Encoding.PEM).decode()


def sign(pdf: bytes, key_pem: str, cert_pem: str, secret: str, reason: str) -> bytes:
    """The PDF with the office's PAdES signature over the whole file."""
    from pyhanko.keys import load_certs_from_pemder_data, load_private_key_from_pemder_data
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import fields, signers
    from pyhanko_certvalidator.registry import SimpleCertificateStore

    certs = list(load_certs_from_pemder_data(cert_pem.encode()))
    key = load_private_key_from_pemder_data(key_pem.encode(), passphrase=_password(secret))
    signer = signers.SimpleSigner(signing_cert=certs[0], signing_key=key,
                                  cert_registry=SimpleCertificateStore.from_certs(certs))  # type: ignore[no-untyped-call]
    meta = signers.PdfSignatureMetadata(field_name=FIELD, reason=reason, subfilter=fields.SigSeedSubFilter.PADES)
    out = signers.sign_pdf(IncrementalPdfFileWriter(io.BytesIO(pdf)), meta, signer=signer)
    signed: bytes = out.getvalue()
    return signed


@dataclasses.dataclass(frozen=True)
class Verdict:
    """What checking a PDF's signature found."""

    signed: bool  # it carries a signature at all
    intact: bool  # nothing in what the signature covers changed
    trusted: bool  # made by one of the given offices' certificates
    whole_file: bool  # it covers the whole file (nothing added after signing)
    signer: str = ""
    signed_at: dt.datetime | None = None

    @property
    def valid(self) -> bool:
        return self.signed and self.intact and self.trusted and self.whole_file


async def verify(pdf: bytes, cert_pems: list[str]) -> Verdict:
    """Check a PDF's office signature against the offices' certificates."""
    from pyhanko.keys import load_certs_from_pemder_data
    from pyhanko.pdf_utils.misc import PdfReadError
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import async_validate_pdf_signature
    from pyhanko.sign.validation.status import SignatureCoverageLevel
    from pyhanko_certvalidator import ValidationContext

    roots = [cert for pem in cert_pems for cert in load_certs_from_pemder_data(pem.encode())]
    try:
        reader = PdfFileReader(io.BytesIO(pdf), strict=False)
        embedded = reader.embedded_signatures
    except (PdfReadError, ValueError, KeyError, TypeError, IndexError, AttributeError):
        return Verdict(False, False, False, False)
    if not embedded:
        return Verdict(False, False, False, False)
    try:
        status = await async_validate_pdf_signature(embedded[-1], ValidationContext(trust_roots=roots, allow_fetching=False))
    except Exception:  # noqa: BLE001 - pyHanko raises many kinds on a mangled signature: all mean broken
        return Verdict(True, False, False, False)
    signer = status.signing_cert.subject.native.get("common_name", "") if status.signing_cert else ""
    return Verdict(True, bool(status.intact and status.valid), bool(status.trusted),
                   status.coverage == SignatureCoverageLevel.ENTIRE_FILE, str(signer), status.signer_reported_dt)
