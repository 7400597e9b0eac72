#!/bin/sh
# Checks the ONNX schema the build compiles: it exists, it is ONNX's ModelProto schema, and
# (when it comes from Debian's libonnx-dev) the package version is one we have built against.
# usage: proto/check-schema.sh PATH/onnx.proto
# ONNX_PROTO_ANY_VERSION=1 accepts any package version (at your own risk).
set -eu
proto=$1
pkg=libonnx-dev
known="1.12 1.13 1.14 1.15 1.16"   # IR versions 8 to 10; 1.12 is Debian 12's and the tested one

if [ ! -f "$proto" ]; then
    echo "proto: $proto not found: the ONNX schema comes from the Debian package $pkg" >&2
    echo "       (install it with 'make deps', or point ONNX_PROTO=... at an onnx.proto)" >&2
    exit 1
fi
if ! grep -q '^package onnx;' "$proto" || ! grep -q '^message ModelProto' "$proto"; then
    echo "proto: $proto is not ONNX's schema (no 'package onnx;' and 'message ModelProto')" >&2
    exit 1
fi
owner=$(dpkg-query -S "$proto" 2>/dev/null | cut -d: -f1) || owner=
if [ "$owner" = "$pkg" ]; then
    version=$(dpkg-query -W -f='${Version}' "$pkg")
    major_minor=$(echo "$version" | sed -E 's/^([0-9]+\.[0-9]+).*/\1/')
    case " $known " in
    *" $major_minor "*) ;;
    *)
        if [ "${ONNX_PROTO_ANY_VERSION:-0}" != 1 ]; then
            echo "proto: $pkg $version is not a version onnx-distill was built against ($known);" >&2
            echo "       rebuild with ONNX_PROTO_ANY_VERSION=1 to try it anyway" >&2
            exit 1
        fi
        echo "proto: warning: $pkg $version untested (ONNX_PROTO_ANY_VERSION=1)" >&2
        ;;
    esac
    echo "proto: $proto from $pkg $version"
else
    echo "proto: $proto (not from $pkg: version not checked)"
fi
