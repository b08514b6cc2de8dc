#!/usr/bin/env python3
"""Writes mosquitto's password file and ACL file from the device registry.

    broker_files.py REGISTRY.toml OUT_DIR

OUT_DIR/passwd gets one `username:password` line per account: hashes
(`password_hash`) as they are, clear passwords (development) as text, which
the caller then hashes in place with `mosquitto_passwd -U`. OUT_DIR/acl lets
each device write only its own topics and read only their `/rejected`
replies; the bridge reads every device topic and writes the replies.

The bridge checks the same file more strictly when it starts
(services/mqtt-bridge/src/registry.rs); this script refuses what would make
the generated files unsafe (a separator or wildcard inside a topic level).
"""
import os
import sys
import tomllib

ROOT = "citybrain/v1"


def level(value, what):
    bad = set("/+#: \t\r\n")
    if not value or any(c in bad for c in value):
        sys.exit(f"broker_files: {what} {value!r} is not a safe topic level")
    return value


def account_line(username, entry, what):
    if ":" in username or not username.strip():
        sys.exit(f"broker_files: {what}: username {username!r} is not usable")
    secret = entry.get("password_hash") or entry.get("password")
    if not secret or "\n" in secret:
        sys.exit(f"broker_files: {what}: password or password_hash is required")
    return f"{username}:{secret}\n"


def main():
    registry_path, out_dir = sys.argv[1], sys.argv[2]
    with open(registry_path, "rb") as f:
        registry = tomllib.load(f)
    bridge = registry["bridge"]
    passwd = [account_line(bridge["username"], bridge, "[bridge]")]
    acl = [
        "# Generated from the device registry by deploy/local/mosquitto/broker_files.py.\n",
        f"user {bridge['username']}\n",
        f"topic read {ROOT}/+/+/+\n",
        f"topic write {ROOT}/+/+/+/rejected\n\n",
    ]
    for device in registry.get("devices", []):
        tenant = level(device["tenant"], "tenant")
        device_id = device["device_id"]
        if device_id != "+":
            level(device_id, "device_id")
        username = device.get("username") or f"{tenant}/{device_id}"
        passwd.append(account_line(username, device, f"device {device_id!r}"))
        acl.append(f"user {username}\n")
        for kind in device["kinds"]:
            topic = f"{ROOT}/{tenant}/{level(kind, 'kind')}/{device_id}"
            acl.append(f"topic write {topic}\n")
            acl.append(f"topic read {topic}/rejected\n")
        acl.append("\n")
    os.makedirs(out_dir, exist_ok=True)
    for name, lines in (("passwd", passwd), ("acl", acl)):
        path = os.path.join(out_dir, name)
        with open(path, "w") as f:
            f.writelines(lines)
        os.chmod(path, 0o600)


if __name__ == "__main__":
    main()
