"""What a reimport source may look like, before any file system is asked.

Pure rules on the text of a path or fsspec URL, shared by the settings (refused at start-up)
and by the reimport itself (a deployment's `source` parameter can be anything). fsspec reads
a file URL's host as a folder under the working directory (`file://evil/srv/a.xlsx` is
`./evil/srv/a.xlsx`; `file://~/srv/a.xlsx` is under the home directory) and its query or
fragment as part of the file name, so such URLs name another file than they seem to.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from itemsheet.sheet.messages import QUOTED_CHARS

# Reading over HTTP would need aiohttp, and an allow-list of web addresses would have to
# follow redirects; reimports read folders and object stores instead.
WEB_SCHEMES = frozenset({"http", "https"})
LOCAL_SCHEMES = frozenset({"file", "local"})
WEB_ADDRESS = (
    "is a web address; reimports read paths and fsspec URLs of file systems and object"
    " stores, not web addresses: copy the file to a folder or bucket and name that"
)
CHAINED = "chains file systems ('::'); name the file by one path or URL"
WITH_QUERY = (
    "has a query or fragment, which would be read as part of the file name; name the file by"
    " its path alone"
)


def form_refusal(url: str) -> str | None:
    """Why no reimport reads `url` whatever the allow-list says (the end of a sentence
    about it), or None."""
    if "::" in url:
        return CHAINED
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in WEB_SCHEMES:
        return WEB_ADDRESS
    if scheme in LOCAL_SCHEMES:
        if parts.netloc:
            host = parts.netloc[:QUOTED_CHARS]
            return (
                f"names the host '{host}'; a file URL names no host: write file:///path"
                " (three slashes) or the path alone"
            )
        if parts.query or parts.fragment or url.rstrip().endswith(("?", "#")):
            return WITH_QUERY
    return None
