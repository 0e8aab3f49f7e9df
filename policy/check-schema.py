#!/usr/bin/python3
"""Keeps policy/schema.json and the daemon's policy parser in step.

1. Every policy/*.yaml must be valid for the schema and for the daemon
   (auto-usb-attach --check -c FILE).
2. A few hundred small policies, generated below, each either good or bad,
   are given to both; both must give the expected answer.  Every key of the
   schema is exercised by a good policy, every patterned key by bad values.
3. The keys the parser allows in each mapping (read from its "unknown key"
   error) must be the schema's properties there, and the class names of
   src/policy.c must be the schema's.

YAML is read here as the daemon reads it: a plain scalar is null when it is
empty, ~ or null, an integer when it is decimal digits, and text otherwise;
quoted values are text; tags are ignored; aliases, duplicate keys and NUL
characters are refused.  (An editor reads YAML by its own typing: there,
values that look like numbers, such as vendor: 0407, must be quoted.)  Two
checks cannot be written in JSON Schema and are made here instead, as the
daemon makes them: a rule's domain must be declared under domains, and keys
must not repeat.

Environment: AUA_DAEMON (default src/auto-usb-attach), AUA_SRCDIR (default:
the directory above this file).  Debian packages: python3-yaml,
python3-jsonschema.  Exits 0 when all agree, 1 on any disagreement, 99 when
it cannot run.
"""

import concurrent.futures
import glob
import json
import os
import re
import subprocess
import sys
import tempfile

try:
    import yaml
    from yaml.nodes import MappingNode, ScalarNode, SequenceNode
except ImportError:
    print("check-schema.py: python3-yaml is missing (apt-get install python3-yaml)")
    sys.exit(99)
try:
    import jsonschema
    from jsonschema import Draft202012Validator
except ImportError:
    print("check-schema.py: python3-jsonschema is missing (apt-get install python3-jsonschema)")
    sys.exit(99)

SRCDIR = os.environ.get("AUA_SRCDIR") or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DAEMON = os.environ.get("AUA_DAEMON") or "src/auto-usb-attach"
SCHEMA_PATH = os.path.join(SRCDIR, "policy", "schema.json")

# The class names of src/policy-check.c (class_names[]), checked against it below.
CLASS_NAMES = [
    "audio", "comm", "cdc", "hid", "physical", "image", "printer", "storage",
    "mass-storage", "hub", "cdc-data", "smart-card", "ccid", "content-security",
    "video", "personal-healthcare", "audio-video", "billboard", "type-c-bridge",
    "diagnostic", "wireless", "bluetooth", "misc", "application", "vendor",
]

# Policies the schema refuses on purpose and the parser still accepts: a
# parser bug each, to be fixed in src/policy.c.  When the parser is fixed
# the case agrees and this script says to remove it from here.
KNOWN_PARSER_BUGS = {
    # "case-name": "what src/policy.c gets wrong",
}


# ---- YAML as the daemon reads it ----

class PolicyYAMLError(Exception):
    pass


class PolicyLoader(yaml.SafeLoader):
    """A SafeLoader with the daemon's typing and refusals (see the top)."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise PolicyYAMLError("line %d: YAML aliases (*name) are not supported in a policy"
                                  % (mark.line + 1))
        return super().compose_node(parent, index)

    def get_single_node(self):
        node = super().get_single_node()
        if node is not None:
            self._retag(node)
        return node

    def _retag(self, node):
        # Explicit tags (!!str, !!set, !foo) mean nothing to the daemon.
        if isinstance(node, ScalarNode):
            plain = node.style is None
            node.tag = self.resolve(ScalarNode, node.value, (plain, not plain))
        elif isinstance(node, SequenceNode):
            node.tag = "tag:yaml.org,2002:seq"
            for item in node.value:
                self._retag(item)
        elif isinstance(node, MappingNode):
            node.tag = "tag:yaml.org,2002:map"
            for key, value in node.value:
                self._retag(key)
                self._retag(value)

    def construct_mapping(self, node, deep=False):
        result = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, ScalarNode):
                raise PolicyYAMLError("line %d: a key must be a plain name" % line)
            key = key_node.value
            if "\0" in key:
                raise PolicyYAMLError("line %d: a NUL character is not allowed" % line)
            if key in result:
                raise PolicyYAMLError("line %d: duplicate key '%s'" % (line, key))
            result[key] = self.construct_object(value_node, deep=deep)
        return result

    def construct_text(self, node):
        value = self.construct_scalar(node)
        if "\0" in value:
            raise PolicyYAMLError("line %d: a NUL character is not allowed"
                                  % (node.start_mark.line + 1))
        return value

    def construct_decimal(self, node):
        return int(node.value, 10)


PolicyLoader.yaml_implicit_resolvers = {}
PolicyLoader.add_implicit_resolver("tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"),
                                   ["~", "n", "N", ""])
PolicyLoader.add_implicit_resolver("tag:yaml.org,2002:int", re.compile(r"^[-+]?[0-9]+$"),
                                   list("-+0123456789"))
# Plain true and false are booleans (allow-dom0-lockout reads them); YAML
# 1.1's yes/no/on/off are not: the daemon refuses them there.
PolicyLoader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|false)$"),
                                   list("tf"))
PolicyLoader.add_constructor("tag:yaml.org,2002:str", PolicyLoader.construct_text)
PolicyLoader.add_constructor("tag:yaml.org,2002:int", PolicyLoader.construct_decimal)


def load_policy(text):
    return yaml.load(text, Loader=PolicyLoader)


# ---- the schema's verdict ----

def make_validator():
    try:
        with open(SCHEMA_PATH, encoding="utf-8") as f:
            schema = json.load(f)
        Draft202012Validator.check_schema(schema)
    except (OSError, ValueError, jsonschema.exceptions.SchemaError) as e:
        print("check-schema.py: %s is not a valid JSON Schema: %s" % (SCHEMA_PATH, e))
        sys.exit(1)
    # An integer is a YAML integer: never a boolean, never 6.0.
    checker = Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda _checker, v: isinstance(v, int) and not isinstance(v, bool))
    cls = jsonschema.validators.extend(Draft202012Validator, type_checker=checker)
    return schema, cls(schema)


def schema_verdict(validator, text):
    """(accepted, reason) for the YAML text, by the schema and the checks above."""
    try:
        data = load_policy(text)
    except (yaml.YAMLError, PolicyYAMLError) as e:
        return False, "YAML: %s" % str(e).replace("\n", " ")
    errors = list(validator.iter_errors(data))
    if errors:
        e = jsonschema.exceptions.best_match(errors)
        where = "/".join(str(p) for p in e.absolute_path) or "(top)"
        return False, "schema: at %s: %s" % (where, e.message)
    domains = data.get("domains") if isinstance(data, dict) else None
    declared = set(domains) if isinstance(domains, dict) else set()
    for i, rule in enumerate(data.get("rules") or []):
        if isinstance(rule, dict) and isinstance(rule.get("domain"), str) \
                and rule["domain"] not in declared:
            return False, "rules/%d: unknown domain '%s'" % (i, rule["domain"])
    return True, "valid"


# ---- the daemon's verdict ----

class DaemonError(Exception):
    pass


def daemon_verdict(path):
    """(accepted, output) of auto-usb-attach --check -c path."""
    try:
        r = subprocess.run([DAEMON, "--check", "-c", path], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise DaemonError("cannot run %s --check -c %s: %s" % (DAEMON, path, e))
    out = (r.stdout + r.stderr).decode("utf-8", "replace").strip()
    if r.returncode not in (0, 1):
        raise DaemonError("%s --check -c %s exited with %d (expected 0 or 1):\n%s"
                          % (DAEMON, path, r.returncode, out))
    return r.returncode == 0, out


# ---- the generated policies ----

def q(value):
    """A YAML double-quoted scalar (JSON's syntax is valid YAML)."""
    return json.dumps(value)


def with_match(match):
    """A policy with one rule whose match: is the given flow text."""
    return "version: 1\ndomains:\n  win10: {}\nrules:\n  - match: %s\n    domain: win10\n" % match


def with_rule(rule):
    return "version: 1\ndomains:\n  win10: {}\nrules:\n  - %s\n" % rule


def with_domains(domains, defaults=None):
    text = "version: 1\n"
    if defaults is not None:
        text += "defaults: %s\n" % defaults
    return text + "domains: %s\n" % domains


# Values each match key must accept and refuse.  Values that the daemon's
# typing reads as integers are left out: the schema wants them quoted.
GOOD_VALUES = {
    "id": ["1050:0407", "ABCD:ef01", "1050:*", "*:*", "10?0:04[0-9]7", "[!]]:1234",
           "-:!", "1234567890abcde*:0407", "105[0-9]:[]a]7"],
    "vendor": ["1050", "abcd", "ABCD", "10*", "?", "[0-9]05*", "1234567890abcde*"],
    "product": ["0407", "*", "04[!5]7"],
    "serial": ["0012345", "0012*", "", "a\\*b", "[!]]", "[]x]", "*[0-9]", "x y", "é",
               "true", "1.5", "yes"],
    "manufacturer": ["Yubico", "Logitech*", "[Ll]ogitech", "\\[x"],
    "product-name": ["YubiKey OTP+FIDO+CCID", "*Keyboard*", "a?c"],
    "hub": ["usb1", "usb3", "usb999", "1-1", "3-2.4", "999-999",
            "1-1.2.3.4.5.6.7", "pci-0000:00:14.0", "pci-0000:03:00.7-usb-0:1",
            "pci-0000:00:14.0-usb-0:1.4.2", "pci-10000:e0:1d.7-usb-0:999",
            "pci-0000:00:14.0-usb-0:1.2.3.4.5.6.7", "pci-0000:00:14.0-usbv2-0:1",
            "pci-0000:00:14.0-usbv3", "pci-0000:05:00.3-usbv1-0:1.2.3.4.5.6.7"],
    "connector": ["pci-0000:00:14.0-usbv2-0:1", "pci-0000:00:14.0-usbv3-0:2.4",
                  "pci-10000:e0:1d.7-usbv1-0:999"],
    "path": ["pci-0000:00:14.0-usb-0:1.4", "pci-0000:00:14.0", "pci-*-usb-0:1.*", "*",
             "", "anything at all", "pci-0000:00:14.0-usbv2-0:1", "[!x]", "a\\*b"],
    "port": ["1-1", "1-1.4", "usb3", "1-1.2.3.4.5.6.7", "1-1.*", "*",
             "1-[12]", "?-?", "1-\\*"],
    "class": CLASS_NAMES + ["03", "0x03", "0X1f", "ff", "0", "03:01", "03:01:01",
                            "03:*:01", "03:*:*", "e0:01:01", "0x3:0x1:0x2"],
    "interface-class": ["hid", "smart-card", "03:01:01", "08:06:50", "ff:*"],
    "connect-type": ["hotplug", "hardwired", "unknown"],
    "every-interface-class": ["hid", "03:01:01", "ff:*"],
    "no-interface-class": ["storage", "03:*:01"],
}
# Keys that take one class or a list of them.
SET_KEYS = ("every-interface-class", "no-interface-class")
BAD_VALUES = {
    "id": ["1050", "1050:407", "1050:0407:1", "105g:0407", "[12:0407", "1050:", ":0407",
           "12345678901234567:*", "10\\50:0407", "1050 :0407", "1050:0407\n", "^:0407"],
    "vendor": ["105", "10505", "xyz!", "", "10:50", "[0-9", "1234567890abcdef", "1234567890abcdef*"],
    "product": ["040", "04070", "\\*"],
    "serial": ["[abc", "abc\\", "[!]", "[]"],
    "manufacturer": ["[", "x\\"],
    "product-name": ["[!", "\\"],
    "hub": ["1-*", "usb", "usb0", "3", "0-1", "1-0", "1-1.", "1-1000", "usb1000", "usb001",
            "01-1",
            "1-1.2.3.4.5.6.7.8", "usb3\n", "USB3", " 1-1", "pci-0000:00:14.0-usb-0:*",
            "pci-0000:00:14.8", "pci-0000:00:1C.0", "pci-000:00:14.0", "pci-0000:00:14.0-",
            "pci-0000:00:14.0-usb-0:", "pci-0000:00:14.0-usb-0:0", "pci-0000:00:14.0-usb-0:01",
            "pci-0000:00:14.0-usb-0:1.", "pci-0000:00:14.0-usb-1:1",
            "pci-0000:00:14.0-usbv4-0:1", "pci-0000:00:14.0-usbv-0:1",
            "pci-0000:00:14.0-usbv3-", "pci-0000:00:14.0-usbv3-0:",
            "pci-0000:00:14.0-usb-0:1.1.1.1.1.1.1.1",
            "pci-0000:00:14.0-usb-0:1000", "pci-0000:00:14.0\n", "pci-123456789:00:14.0"],
    "path": ["[abc", "abc\\", "[!]"],
    "connector": ["pci-0000:00:14.0-usb-0:1", "pci-0000:00:14.0", "pci-0000:00:14.0-usbv3",
                  "pci-0000:00:14.0-usbv3-0:*", "pci-0000:00:14.0-usbv0-0:1", "usb2", "2-1",
                  "pci-0000:00:14.0-usbv3-0:1.1.1.1.1.1.1.1", "pci-0000:00:14.0-usbv3-0:01"],
    "port": ["1-0", "0-1", "1-1.", "1", "usb0", "1-1.1.1.1.1.1.1.1", "1-1000", "[1-", "001-001",
             "1-1\n", "x", "\\1-1"],
    "class": ["foo", "HID", "*", "*:01", "03:", "03:01:01:01", "0x", "0x003", "123", "g",
              "03::01", "", "03:01:01\n"],
    "interface-class": ["keyboard", "03:01:01:", "0x:01"],
    "connect-type": ["Hotplug", "not used", "not-used", "", "hot plug", "hotplug\n"],
    "every-interface-class": ["keyboard", "03:01:01:", ""],
    "no-interface-class": ["HID", "*"],
}


def generated_cases():
    """[(name, yaml_text, expected_accept)]"""
    cases = []

    def add(name, text, ok):
        cases.append((name, text, ok))

    # The top level.
    add("minimal", "version: 1\n", True)
    add("empty-sections", "version: 1\ndefaults:\ndomains:\nrules:\n", True)
    add("empty-flow-sections", "version: 1\ndefaults: {}\ndomains: {}\nrules: []\n", True)
    add("version-leading-zero", "version: 01\n", True)
    add("version-plus", "version: +1\n", True)
    add("comments", "# a comment\nversion: 1 # one\n", True)
    add("document-markers", "---\nversion: 1\n...\n", True)
    add("tag-ignored", "version: 1\ndomains: !!map {a: !!map {}}\n", True)
    add("anchor-without-alias", "version: 1\ndomains: {a: &x {}}\n", True)
    add("empty-file", "", False)
    add("comment-only", "# nothing\n", False)
    add("top-list", "- version: 1\n", False)
    add("top-scalar", "version 1\n", False)
    add("version-missing", "domains: {}\n", False)
    add("version-2", "version: 2\n", False)
    add("version-0", "version: 0\n", False)
    add("version-quoted", 'version: "1"\n', False)
    add("version-float", "version: 1.0\n", False)
    add("version-hex", "version: 0x1\n", False)
    add("version-null", "version:\n", False)
    add("version-list", "version: [1]\n", False)
    add("version-true", "version: true\n", False)
    add("unknown-top-key", "version: 1\nrule: []\n", False)
    add("two-documents", "version: 1\n---\nversion: 1\n", False)
    add("alias", "version: 1\ndefaults: &d {}\ndomains: {a: *d}\n", False)
    add("merge-key", "version: 1\ndomains: {a: {<<: {controller: {}}}}\n", False)
    add("duplicate-top-key", "version: 1\nversion: 1\n", False)
    add("nul-in-value", 'version: 1\nrules:\n  - name: "a\\0b"\n    match: {}\n    action: ignore\n',
        False)
    add("yaml-syntax-error", "version: 1\ndomains: {a: {}\n", False)
    add("tab-indent", "version: 1\ndomains:\n\ta: {}\n", False)

    # defaults and domains.
    add("defaults-list", "version: 1\ndefaults: []\n", False)
    add("defaults-scalar", "version: 1\ndefaults: x\n", False)
    add("defaults-unknown-key", "version: 1\ndefaults: {controllers: {}}\n", False)
    add("defaults-domain-key", "version: 1\ndefaults: {win10: {}}\n", False)
    add("defaults-qmp", "version: 1\ndefaults: {qmp-socket: /run/xen/qmp}\n", True)
    add("defaults-qmp-relative", "version: 1\ndefaults: {qmp-socket: run/xen/qmp}\n", False)
    add("defaults-qmp-empty", 'version: 1\ndefaults: {qmp-socket: ""}\n', False)
    add("defaults-qmp-null", "version: 1\ndefaults: {qmp-socket: }\n", False)
    add("defaults-controller-null", "version: 1\ndefaults: {controller: }\n", True)
    add("defaults-controller-list", "version: 1\ndefaults: {controller: []}\n", False)
    add("domains-list", "version: 1\ndomains: [a]\n", False)
    add("domains-scalar", "version: 1\ndomains: a\n", False)
    add("domain-null", "version: 1\ndomains:\n  a:\n  b: ~\n", True)
    add("domain-names", "version: 1\ndomains: {a: {}, Win_10.x+y-z: {}, 7: {}, null: {}, %s: {}}\n"
        % ("d" * 64), True)
    add("domain-name-quoted", 'version: 1\ndomains: {"win10": {}}\n', True)
    for bad in ["a b", "d" * 65, "", "é", "a/b", "~"]:
        add("domain-name-bad-%r" % bad, "version: 1\ndomains: {%s: {}}\n" % q(bad), False)
    add("domain-name-list", "version: 1\ndomains: {[a]: {}}\n", False)
    add("domain-duplicate", "version: 1\ndomains:\n  a: {}\n  a: {}\n", False)
    add("domain-list", "version: 1\ndomains: {a: []}\n", False)
    add("domain-unknown-key", "version: 1\ndomains: {a: {ports: 6}}\n", False)
    add("domain-qmp", "version: 1\ndomains: {a: {qmp-socket: /run/xen/qmp-libxl-3}}\n", True)
    add("domain-qmp-relative", "version: 1\ndomains: {a: {qmp-socket: qmp}}\n", False)
    add("domain-qmp-list", "version: 1\ndomains: {a: {qmp-socket: [/x]}}\n", False)

    # Controllers, in defaults (alone: no domains key) and in a domain.
    good_pairs = ["{version: 1, ports: 2}", "{version: 2, ports: 6}", "{version: 3, ports: 1}",
                  "{version: 3, ports: 15}", "{version: 3, ports: 8, max: 2}", "{version: 1}",
                  "{version: 2}", "{version: 3}", "{ports: 6}", "{max: 0}", "{max: 64}", "{}",
                  "{version: 3, ports: 4, max: 1}", "{ports: 2}", "{ports: 15}",
                  "{type: auto}", "{type: devicemodel, version: 1}", "{type: qusb}",
                  "{type: qusb, version: 1, ports: 4}", "{type: qusb, version: 2, ports: 15}"]
    bad_pairs = ["{version: 1, ports: 6}", "{version: 2, ports: 2}", "{version: 2, ports: 8}",
                 "{version: 3, ports: 16}", "{version: 3, ports: 0}", "{version: 0}",
                 "{version: 4}", "{max: -1}", "{max: 65}", '{ports: "6"}', "{version: 2.0}",
                 "{ports: 16}", "{port: 6}", "{version: 3, ports: }",
                 "{version: [3]}", "{version: 3, ports: 0x6}", "{type: pv}", "{type: 3}",
                 "{type: qusb, version: 3}", "{type: qusb, ports: 16}",
                 "{type: devicemodel, version: 2, ports: 4}"]
    for i, c in enumerate(good_pairs):
        add("defaults-controller-good-%d" % i, "version: 1\ndefaults: {controller: %s}\n" % c, True)
        add("domain-controller-good-%d" % i, with_domains("{a: {controller: %s}}" % c), True)
    for i, c in enumerate(bad_pairs):
        add("defaults-controller-bad-%d" % i, "version: 1\ndefaults: {controller: %s}\n" % c, False)
        add("domain-controller-bad-%d" % i, with_domains("{a: {controller: %s}}" % c), False)
    # A domain's ports without a version go with the default's version (3,
    # xHCI, 1 to 15 ports, when defaults name none).
    add("inherit-v1-ports-2", with_domains("{a: {controller: {ports: 2}}}",
                                           "{controller: {version: 1}}"), True)
    add("inherit-v1-ports-6", with_domains("{a: {controller: {ports: 6}}}",
                                           "{controller: {version: 1}}"), False)
    add("inherit-v3-ports-9", with_domains("{a: {controller: {ports: 9}}}",
                                           "{controller: {version: 3, ports: 4}}"), True)
    add("inherit-v2-ports-2", with_domains("{a: {controller: {ports: 2}}}",
                                           "{controller: {version: 2}}"), False)
    add("inherit-none-ports-6", with_domains("{a: {controller: {ports: 6, max: 1}}}"), True)
    add("inherit-none-ports-8", with_domains("{a: {controller: {ports: 8}}}"), True)
    add("inherit-none-ports-16", with_domains("{a: {controller: {ports: 16}}}"), False)
    add("inherit-qmp-only-ports-2", with_domains("{a: {controller: {ports: 2}}}",
                                                 "{qmp-socket: /q}"), True)
    add("inherit-v2-ports-8", with_domains("{a: {controller: {ports: 8}}}",
                                           "{controller: {version: 2}}"), False)
    add("own-version-resets-ports", with_domains("{a: {controller: {version: 2}}}",
                                                 "{controller: {version: 3, ports: 15}}"), True)
    add("own-version-1-with-default-ports", with_domains("{a: {controller: {version: 1}}}",
                                                         "{controller: {ports: 6}}"), True)
    add("defaults-bad-pair-used", with_domains("{a: {}, b: {controller: {max: 1}}}",
                                               "{controller: {version: 1, ports: 6}}"), False)
    add("defaults-bad-pair-domains-empty", with_domains("{}", "{controller: {version: 1, ports: 6}}"),
        False)
    add("defaults-bad-pair-every-domain-sets-version",
        with_domains("{a: {controller: {version: 3}}}", "{controller: {version: 1, ports: 6}}"), False)

    # The lock-out guard's switch, at each of its three levels.
    for v, ok in [("true", True), ("false", True), ('"true"', False), ("1", False),
                  ("[true]", False), ("", False)]:
        add("defaults-lockout-%r" % v, "version: 1\ndefaults: {allow-dom0-lockout: %s}\n" % v, ok)
        add("domain-lockout-%r" % v, with_domains("{a: {allow-dom0-lockout: %s}}" % v), ok)
        add("rule-lockout-%r" % v,
            with_rule("{match: {}, domain: win10, allow-dom0-lockout: %s}" % v), ok)

    # Rules.
    add("rules-mapping", "version: 1\nrules: {match: {}}\n", False)
    add("rules-scalar", "version: 1\nrules: x\n", False)
    add("rule-null", "version: 1\nrules:\n  -\n", False)
    add("rule-scalar", "version: 1\nrules:\n  - x\n", False)
    add("rule-list", "version: 1\nrules:\n  - [match]\n", False)
    add("rule-attach", with_rule("{name: r, match: {}, domain: win10}"), True)
    add("rule-attach-explicit", with_rule("{match: {}, domain: win10, action: attach}"), True)
    add("rule-ignore", with_rule("{match: {}, action: ignore}"), True)
    add("rule-ignore-named", with_rule('{name: "keyboards stay", match: {}, action: ignore}'), True)
    add("rule-match-null", with_rule("{match: , domain: win10}"), True)
    add("rule-name-empty-quoted", with_rule('{name: "", match: {}, domain: win10}'), True)
    add("rule-name-date", with_rule("{name: 2024-01-01, match: {}, domain: win10}"), True)
    add("rule-name-bool", with_rule("{name: yes, match: {}, domain: win10}"), True)
    add("rule-name-null", with_rule("{name: , match: {}, domain: win10}"), False)
    add("rule-name-list", with_rule("{name: [a], match: {}, domain: win10}"), False)
    add("rule-name-map", with_rule("{name: {a: b}, match: {}, domain: win10}"), False)
    add("rule-no-match", with_rule("{domain: win10}"), False)
    add("rule-no-domain", with_rule("{match: {}}"), False)
    add("rule-attach-no-domain", with_rule("{match: {}, action: attach}"), False)
    add("rule-ignore-with-domain", with_rule("{match: {}, action: ignore, domain: win10}"), False)
    add("rule-bad-action", with_rule("{match: {}, action: drop}"), False)
    add("rule-action-null", with_rule("{match: {}, action: , domain: win10}"), False)
    add("rule-action-case", with_rule("{match: {}, action: Ignore}"), False)
    add("rule-unknown-key", with_rule("{match: {}, domain: win10, priority: 1}"), False)
    add("rule-unknown-domain", with_rule("{match: {}, domain: win11}"), False)
    add("rule-domain-empty", with_rule('{match: {}, domain: ""}'), False)
    add("rule-domain-null", with_rule("{match: {}, domain: }"), False)
    add("rule-domain-list", with_rule("{match: {}, domain: [win10]}"), False)
    add("rule-domain-no-domains", "version: 1\nrules:\n  - {match: {}, domain: a}\n", False)
    add("rule-domain-bad-entry", "version: 1\ndomains: {a b: {}}\nrules:\n  - {match: {}, domain: a b}\n",
        False)
    add("rule-duplicate-key", with_rule("{match: {}, match: {}, domain: win10}"), False)
    add("rule-domain-declared-later",
        "version: 1\nrules:\n  - {match: {}, domain: a}\ndomains: {a: {}}\n", True)
    add("match-list", with_match("[]"), False)
    add("match-scalar", with_match("usb"), False)
    add("match-unknown-key", with_match("{serial-number: x}"), False)
    add("match-duplicate-key", with_match('{id: "1050:0407", id: "1050:0407"}'), False)
    add("match-every-key", with_match(
        '{id: "1050:0407", vendor: "1050", product: "0407", serial: "0012*", manufacturer: "Yubico",'
        ' product-name: "YubiKey*", hub: "1-1", port: "1-1.2", class: "00", interface-class: ccid}'),
        True)
    for key, values in GOOD_VALUES.items():
        for v in values:
            add("match-%s-good-%r" % (key, v), with_match("{%s: %s}" % (key, q(v))), True)
    for key, values in BAD_VALUES.items():
        for v in values:
            add("match-%s-bad-%r" % (key, v), with_match("{%s: %s}" % (key, q(v))), False)
        for v in ["[]", "{}", "", "~"] + ([] if key in SET_KEYS else
                                          ["[%s]" % q(GOOD_VALUES[key][0])]):
            add("match-%s-type-%r" % (key, v), with_match("{%s: %s}" % (key, v)), False)
    for key in SET_KEYS:
        add("match-%s-list" % key, with_match('{%s: [hid, "08:06:50", smart-card]}' % key), True)
        add("match-%s-list-one" % key, with_match('{%s: ["03:01:01"]}' % key), True)
        add("match-%s-list-16" % key, with_match("{%s: [%s]}" % (key, ", ".join(["hid"] * 16))),
            True)
        add("match-%s-list-17" % key, with_match("{%s: [%s]}" % (key, ", ".join(["hid"] * 17))),
            False)
        add("match-%s-list-bad" % key, with_match("{%s: [hid, keyboard]}" % key), False)
        add("match-%s-list-nested" % key, with_match("{%s: [[hid]]}" % key), False)
        add("match-%s-list-map" % key, with_match("{%s: [{a: b}]}" % key), False)
        add("match-%s-list-null" % key, with_match("{%s: [hid, ~]}" % key), False)
    # Plain (unquoted) values that stay text for the daemon and for this loader.
    add("match-plain-text", with_match("{hub: usb3, port: 1-1.4, class: hid, id: 1050:0407, "
                                       "serial: 0012*, interface-class: 03:01:01}"), True)
    return cases


# ---- the parser's own lists ----

def parser_keys(tmpdir, text):
    """The keys the parser allows where text puts the unknown key zz-probe."""
    path = os.path.join(tmpdir, "probe.yaml")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    ok, out = daemon_verdict(path)
    m = re.search(r"unknown key 'zz-probe' in .*\(expected one of: ([^)]*)\)", out)
    if ok or not m:
        return None, out
    return sorted(k.strip() for k in m.group(1).split(",")), out


def schema_props(schema, ref):
    node = schema
    for part in ref.split("/")[1:]:
        node = node[part]
    while "properties" not in node and "allOf" in node:
        node = schema["$defs"][node["allOf"][0]["$ref"].split("/")[-1]]
    return sorted(node["properties"])


def source_class_names():
    path = os.path.join(SRCDIR, "src", "policy-check.c")
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        return None, str(e)
    m = re.search(r"class_names\[\]\s*=\s*\{(.*?)\n\};", text, re.S)
    if not m:
        return None, "no class_names[] table in %s" % path
    return re.findall(r'\{\s*"([^"]+)"\s*,', m.group(1)), None


# ---- main ----

def main():
    failures = []
    schema, validator = make_validator()
    if not os.access(DAEMON, os.X_OK):
        print("check-schema.py: the daemon %s is not built (set AUA_DAEMON)" % DAEMON)
        return 99

    def fail(msg):
        failures.append(msg)
        print("FAIL: " + msg.replace("\n", "\n      "))

    with tempfile.TemporaryDirectory(prefix="aua-schema-") as tmpdir:
        # 1. The example policies.
        examples = sorted(glob.glob(os.path.join(SRCDIR, "policy", "*.yaml")))
        if not examples:
            fail("no policy/*.yaml under %s" % SRCDIR)
        for path in examples:
            with open(path, encoding="utf-8") as f:
                text = f.read()
            s_ok, s_why = schema_verdict(validator, text)
            d_ok, d_out = daemon_verdict(path)
            name = os.path.relpath(path, SRCDIR)
            if not s_ok:
                fail("%s: not valid for the schema: %s" % (name, s_why))
            if not d_ok:
                fail("%s: refused by the daemon:\n%s" % (name, d_out))
            if s_ok and d_ok:
                print("ok   %s" % name)

        # 2. The generated policies.
        cases = generated_cases()
        names = [c[0] for c in cases]
        dups = sorted({n for n in names if names.count(n) > 1})
        if dups:
            fail("generated case names repeat: %s" % ", ".join(dups))
        paths = []
        for i, (name, text, expected) in enumerate(cases):
            paths.append(os.path.join(tmpdir, "case-%03d.yaml" % i))
            with open(paths[-1], "w", encoding="utf-8") as f:
                f.write(text)
        # The daemon runs for every case; in parallel, as a sanitizer build
        # takes a while to start.
        with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
            daemon_verdicts = list(pool.map(daemon_verdict, paths))
        agreed = 0
        for (name, text, expected), (d_ok, d_out) in zip(cases, daemon_verdicts):
            s_ok, s_why = schema_verdict(validator, text)
            word = {True: "accepts", False: "refuses"}
            detail = ("policy:\n%s\nschema %s it (%s)\ndaemon %s it%s"
                      % (text.rstrip("\n"), word[s_ok], s_why, word[d_ok],
                         (":\n" + d_out) if d_out else ""))
            if name in KNOWN_PARSER_BUGS:
                if s_ok == expected and d_ok != expected:
                    print("xfail %s: known parser bug: %s" % (name, KNOWN_PARSER_BUGS[name]))
                    continue
                if s_ok == expected and d_ok == expected:
                    fail("%s: the parser bug is fixed (%s): remove it from KNOWN_PARSER_BUGS "
                         "in policy/check-schema.py" % (name, KNOWN_PARSER_BUGS[name]))
                    continue
            if s_ok != expected or d_ok != expected:
                wrong = " and ".join(w for w, bad in (("the schema", s_ok != expected),
                                                      ("the daemon", d_ok != expected)) if bad)
                fail("case %s: should be %s, but %s %s it\n%s"
                     % (name, "accepted" if expected else "refused", wrong,
                        word[not expected], detail))
            else:
                agreed += 1
        print("%d of %d generated policies: schema and daemon agree with the expected answer"
              % (agreed, len(cases)))
        for name in KNOWN_PARSER_BUGS:
            if name not in names:
                fail("KNOWN_PARSER_BUGS names %s, which is not a generated case" % name)

        # Every key of the schema is used by a good case; every match key has bad values.
        used = set()

        def collect(where, value):
            if isinstance(value, dict):
                for k, v in value.items():
                    used.add((where, k))
                    sub = {("top", "defaults"): "defaults", ("top", "domains"): "domains",
                           ("top", "rules"): "rules", ("defaults", "controller"): "controller",
                           ("domain", "controller"): "controller", ("rule", "match"): "match"}
                    if where == "domains":
                        collect("domain", v)
                    elif (where, k) in sub:
                        collect(sub[(where, k)], v)
            elif isinstance(value, list) and where == "rules":
                for v in value:
                    collect("rule", v)

        for name, text, expected in cases:
            if expected:
                collect("top", load_policy(text))
        contexts = {"top": "#", "defaults": "#/$defs/defaults", "domain": "#/$defs/domain",
                    "controller": "#/$defs/controller", "rule": "#/$defs/rule",
                    "match": "#/$defs/match"}
        for where, ref in contexts.items():
            for key in schema_props(schema, ref):
                if (where, key) not in used:
                    fail("no good generated policy uses the key '%s' in %s: add one" % (key, where))
        for key in schema_props(schema, "#/$defs/match"):
            if key not in GOOD_VALUES or key not in BAD_VALUES:
                fail("GOOD_VALUES and BAD_VALUES need values for the match key '%s'" % key)

        # 3. The parser's key lists are the schema's.
        probes = [
            ("the top level", "#", "version: 1\nzz-probe: 1\n"),
            ("defaults", "#/$defs/defaults", "version: 1\ndefaults: {zz-probe: 1}\n"),
            ("a domain", "#/$defs/domain", "version: 1\ndomains: {a: {zz-probe: 1}}\n"),
            ("a domain's controller", "#/$defs/controller",
             "version: 1\ndomains: {a: {controller: {zz-probe: 1}}}\n"),
            ("the default controller", "#/$defs/defaults-controller",
             "version: 1\ndefaults: {controller: {zz-probe: 1}}\n"),
            ("a rule", "#/$defs/rule", "version: 1\nrules: [{match: {}, action: ignore, zz-probe: 1}]\n"),
            ("a match", "#/$defs/match", "version: 1\nrules: [{match: {zz-probe: 1}, action: ignore}]\n"),
        ]
        for what, ref, text in probes:
            keys, out = parser_keys(tmpdir, text)
            if keys is None:
                fail("cannot read the keys the parser allows in %s from its error for an unknown "
                     "key; it said:\n%s" % (what, out))
            elif keys != schema_props(schema, ref):
                fail("keys in %s: the parser allows %s, the schema (%s) %s"
                     % (what, ", ".join(keys), ref, ", ".join(schema_props(schema, ref))))
            else:
                print("ok   keys in %s: %s" % (what, ", ".join(keys)))

        names, why = source_class_names()
        if names is None:
            fail("cannot read the class names of src/policy-check.c: %s" % why)
        elif sorted(names) != sorted(CLASS_NAMES):
            fail("class names: src/policy-check.c has %s; policy/check-schema.py (and the schema) %s"
                 % (", ".join(sorted(names)), ", ".join(sorted(CLASS_NAMES))))
        else:
            print("ok   %d class names, as in src/policy-check.c" % len(names))

    if failures:
        print("%d disagreement(s) between policy/schema.json and the daemon's parser" % len(failures))
        return 1
    print("policy/schema.json and the daemon's parser agree")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except DaemonError as e:
        print("check-schema.py: %s" % e)
        sys.exit(99)
