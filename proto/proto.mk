# proto/: the ONNX schema the library compiles and its protobuf-c glue. Included by the main
# Makefile; BUILD is set there. The schema is ONNX's own, from the Debian package libonnx-dev
# (checked by proto/check-schema.sh); the generated C goes to $(BUILD)/proto, never the repo.
ONNX_PROTO    ?= /usr/include/onnx/onnx.proto
PROTO_OUT     := $(BUILD)/proto
PROTO_C       := $(PROTO_OUT)/onnx.pb-c.c
PROTO_OBJ     := $(PROTO_OUT)/onnx.pb-c.o
PROTO_INCLUDE := -Iproto -I$(PROTO_OUT)

$(PROTO_C): $(ONNX_PROTO) proto/check-schema.sh
	@mkdir -p $(PROTO_OUT)
	@proto/check-schema.sh $(ONNX_PROTO)
	protoc-c --c_out=$(PROTO_OUT) --proto_path=$(dir $(ONNX_PROTO)) $(ONNX_PROTO)

# Generated code: its warnings are protobuf-c's, not ours.
$(PROTO_OBJ): $(PROTO_C)
	$(CC) $(LIB_CPPFLAGS) $(BASE_CFLAGS) $(PIC_CFLAGS) $(CFLAGS) -w -c $< -o $@
