#!/usr/bin/env bash
# Fetch the ONNX Runtime C/C++ headers (the PyPI wheel ships none) from Debian's
# libonnxruntime-dev package (suite trixie: ORT 1.21, C API 21) and copy them to DEST.
#
#   fetch_ort_headers.sh DEST
#
# The package mirror is read from this machine's own apt configuration at run time; the
# system's apt sources and state are never touched (apt runs on a private list, state and
# cache directory). DEST ends up holding onnxruntime_c_api.h, onnxruntime_cxx_api.h, ...
set -euo pipefail

DEST=${1:?usage: fetch_ort_headers.sh DEST}
SUITE=${SNN_ONNX_ORT_DEB_SUITE:-trixie}
PKG=libonnxruntime-dev

if [[ -f "$DEST/onnxruntime_c_api.h" && -f "$DEST/onnxruntime_cxx_api.h" ]]; then
  echo "fetch_ort_headers: headers already in $DEST"
  exit 0
fi
command -v apt-get >/dev/null && command -v dpkg >/dev/null || {
  echo "fetch_ort_headers: apt-get/dpkg not found (not a Debian-like system)" >&2; exit 1; }

# --- the main Debian archive configured on this machine: URI and keyring -----------------
uri="" keyring=""
for f in /etc/apt/sources.list.d/*.sources; do
  [[ -f $f && -z $uri ]] || continue
  # deb822: blank-line separated stanzas; take the first 'deb' stanza that is not a
  # security / updates archive.
  read -r uri keyring < <(awk '
    function flush() {
      if (types ~ /(^| )deb( |$)/ && uris != "" && uris !~ /security/ && suites !~ /security/)
        { if (!found) { split(uris, u, " "); print u[1], (signed == "" ? "-" : signed); found = 1 } }
      types = uris = suites = signed = ""
    }
    /^[ \t]*#/ { next }
    /^[ \t]*$/ { flush(); next }
    { key = tolower($1); sub(/:$/, "", key); $1 = ""; sub(/^[ \t]+/, "");
      if (key == "types") types = $0; else if (key == "uris") uris = $0;
      else if (key == "suites") suites = $0; else if (key == "signed-by") signed = $0 }
    END { flush() }' "$f") || true
done
if [[ -z $uri && -f /etc/apt/sources.list ]]; then
  # one-line format: deb [options] URI suite components...
  uri=$(awk '$1 == "deb" && $0 !~ /security/ {
           for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' \
        /etc/apt/sources.list)
fi
[[ -n $uri ]] || { echo "fetch_ort_headers: no Debian archive URI found in /etc/apt" >&2; exit 1; }
# Signed-By may be absent or an inline key block: then use the Debian archive keyring.
[[ -n $keyring && $keyring != "-" && -f $keyring ]] || keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[[ -f $keyring ]] || { echo "fetch_ort_headers: keyring $keyring not found" >&2; exit 1; }

# --- private apt run ------------------------------------------------------------------------
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/deb"
echo "deb [signed-by=$keyring] $uri $SUITE main" >"$work/sources.list"
apt_opts=(
  -o "Dir::Etc::SourceList=$work/sources.list" -o Dir::Etc::SourceParts=/dev/null
  -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache"
  -o Debug::NoLocking=1 -o APT::Sandbox::User=root -q
)
apt-get "${apt_opts[@]}" update >&2
(cd "$work/deb" && apt-get "${apt_opts[@]}" download "$PKG" >&2)
deb=$(ls "$work/deb"/*.deb)
dpkg -x "$deb" "$work/root"
src="$work/root/usr/include/onnxruntime"
[[ -f $src/onnxruntime_c_api.h ]] || { echo "fetch_ort_headers: $PKG has no headers at usr/include/onnxruntime" >&2; exit 1; }

# Copy beside DEST, then rename: a concurrent build never sees half a copy.
mkdir -p "$(dirname "$DEST")"
tmp="$DEST.tmp.$$"
rm -rf "$tmp" && cp -r "$src" "$tmp"
if ! mv -T "$tmp" "$DEST" 2>/dev/null; then  # DEST exists: another build won, or a stale dir
  if [[ -f $DEST/onnxruntime_c_api.h ]]; then rm -rf "$tmp"; else rm -rf "$DEST" && mv -T "$tmp" "$DEST"; fi
fi
echo "fetch_ort_headers: $(basename "$deb") -> $DEST"
