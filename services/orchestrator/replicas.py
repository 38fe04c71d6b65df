"""Several replicas of a backend behind one channel: client-side round_robin
over every address, skipping replicas whose grpc.health.v1 status is not
SERVING (gRPC's client-side health checking, from the service config).

An address setting is one target (``sandbox:50053``, or a DNS name with
several A records, as a Kubernetes headless Service gives:
``dns:///sandbox-headless.stratexec.svc:50053``) or a comma-separated list
of host:port addresses (``10.0.0.5:50053,10.0.0.6:50053``).
"""
from __future__ import annotations

import ipaddress
import json
import socket

# round_robin over every resolved address; a replica is picked only while its health check says SERVING.
SERVICE_CONFIG = json.dumps({"loadBalancingConfig": [{"round_robin": {}}], "healthCheckConfig": {"serviceName": ""}})


def _ipv4(host_port: str) -> str:
    host, _, port = host_port.strip().rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"{host_port!r} is not host:port")
    host = host.strip("[]")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = ipaddress.ip_address(socket.getaddrinfo(host, None, socket.AF_INET)[0][4][0])
    if ip.version != 4:
        raise ValueError(f"{host_port!r}: a list of replicas takes IPv4 addresses or names")
    return f"{ip}:{port}"


def channel_target(setting: str) -> str:
    """The gRPC target for an address setting: as it is when it names one target, else an
    ``ipv4:`` list of every replica (names resolved once, at start)."""
    parts = [p for p in setting.split(",") if p.strip()]
    if len(parts) <= 1:
        return setting.strip()
    return "ipv4:" + ",".join(_ipv4(p) for p in parts)
