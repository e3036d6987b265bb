"""BCB's HTTP face: ``POST /aipg/ProcessServlet`` (GBK XML, BANKS.md "BCB") and ``POST /_sim/partners``.

Requests are verified against the partner's key named by ``USER_NAME`` (``1106`` otherwise); every
answer, errors included, is signed with BCB's own RSA key. Magic 96/97 hold the answer for
``hang_s`` and then close with 504 and no body (the client must treat it as unknown).
"""

from __future__ import annotations

import hashlib
import json
import xml.etree.ElementTree as ET

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from banksim.bcb import wire
from banksim.bcb.codes import MESSAGES, BcbError, RetCode
from banksim.bcb.service import BcbService, Result
from banksim.core.magic import withhold_answer
from banksim.core.partners import PartnerConflict, PartnerKey
from banksim.core.simapi import FaultMiddleware, sim_routes

CONTENT_TYPE = "text/xml; charset=GBK"


def user_name(sequence: int) -> str:
    """Bank-assigned USER_NAMEs (merchant ids): ``20060400`` + a 7-digit sequence."""
    return f"20060400{sequence:07d}"


def build_app(service: BcbService, key: rsa.RSAPrivateKey) -> ASGIApp:
    context = service.context
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")

    def answer(info: dict[str, str], result: Result) -> Response:
        code = result.code.value if isinstance(result.code, RetCode) else result.code
        reply = {**info, "RET_CODE": code, "ERR_MSG": result.message or MESSAGES.get(code, "")}
        return Response(wire.sign(wire.build(reply, result.body), key), media_type=CONTENT_TYPE)

    async def process(request: Request) -> Response:
        raw = await request.body()
        try:
            root, document = wire.parse(raw)
        except wire.WireError as error:
            malformed = Result(RetCode.MALFORMED, ET.Element("BODY"), message=str(error))
            return answer({"TRX_CODE": "", "REQ_SN": ""}, malformed)
        info = {name: document.info.get(name, "") for name in ("TRX_CODE", "VERSION", "DATA_TYPE", "LEVEL",
                                                               "USER_NAME", "REQ_SN")}
        partner_key = _partner_key(service, info["USER_NAME"])
        if partner_key is None or not wire.verify(root, partner_key):
            return answer(info, Result(RetCode.SIGNATURE, ET.Element("BODY")))
        try:
            result = service.handle(info["TRX_CODE"], info["USER_NAME"], info["REQ_SN"], document.body)
        except BcbError as error:
            result = Result(error.code, ET.Element("BODY"), message=error.message)
        if result.withhold:
            await withhold_answer(context.config.hang_s)
            return Response(b"", status_code=504)
        return answer(info, result)

    async def partners(request: Request) -> JSONResponse:
        data = json.loads(await request.body() or b"{}")
        try:
            public = serialization.load_pem_public_key(str(data.get("public_key_pem", "")).encode())
        except ValueError:
            return JSONResponse({"error": "send public_key_pem (RSA, 2048 bits or more)"}, status_code=400)
        if not isinstance(public, rsa.RSAPublicKey) or public.key_size < 2048:
            return JSONResponse({"error": "BCB accepts RSA keys of at least 2048 bits"}, status_code=400)
        der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        key = PartnerKey(hashlib.sha256(der).hexdigest()[:16], "", pem.decode("ascii"), None)
        try:
            partner_id = context.partners.register(partner_id=data.get("partner_id"), key=key,
                                                   name=str(data.get("name") or "partner"), assign_id=user_name)
        except PartnerConflict as error:
            return JSONResponse({"error": str(error)}, status_code=409)
        return JSONResponse({"bank": "BCB", "user_name": partner_id, "merchant_id": partner_id,
                             "bcb_public_key_pem": public_pem})

    routes = [
        Route("/aipg/ProcessServlet", process, methods=["POST"]),
        Route("/_sim/partners", partners, methods=["POST"]),
        *sim_routes(context),
    ]
    return FaultMiddleware(Starlette(routes=routes), context)


def _partner_key(service: BcbService, partner_id: str) -> rsa.RSAPublicKey | None:
    rows = service.books.query(
        "SELECT public_key_pem FROM partner_keys WHERE partner_id = ? ORDER BY created_at DESC LIMIT 1", (partner_id,)
    )
    if not rows:
        return None
    public = serialization.load_pem_public_key(str(rows[0]["public_key_pem"]).encode())
    return public if isinstance(public, rsa.RSAPublicKey) else None
