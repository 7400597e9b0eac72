/* The one way the library reaches ONNX's protobuf schema: protobuf-c's generated onnx.pb-c.h,
 * compiled by proto/proto.mk from the onnx.proto of the Debian package libonnx-dev into
 * build/proto/. Only lib/onnx_io.c includes this; protobuf-c structs never leave that file. */
#ifndef OD_PROTO_H
#define OD_PROTO_H

#include "onnx.pb-c.h"

#endif
