/* Internal: graph editing helpers shared by passes.c and quantize.c. */
#ifndef OD_PASSES_INTERNAL_H
#define OD_PASSES_INTERNAL_H

#include "od_passes.h"

/* Removes the nodes with drop[i] set (drop may be NULL), forgets the values nothing refers to
 * any more (value_info entries included; value_info of graph inputs, outputs and initializers
 * goes too), then sorts and checks the graph (od_graph_check). */
od_status od_pass_compact(od_graph *g, const bool *drop, od_error *err);

/* A value name not in g: base + suffix, then base + suffix + "_<first>", "_<first + 1>", ...
 * (optimize's passes count from 2, the student builder from 1); malloc'd, NULL on OOM. */
char *od_pass_unique_name(const od_graph *g, const char *base, const char *suffix, int first);

/* Adds t (owned from now on, even on failure; its name is replaced) as an initializer named
 * name + suffix, made unique. Returns the value index or -1 (error set). */
int od_pass_add_init(od_graph *g, const char *base, const char *suffix, od_tensor *t,
                     od_error *err);
/* Removes value v from the initializer list and frees its data. */
void od_pass_drop_init(od_graph *g, int v);

/* Appends a node of the default domain; inputs and outputs are value indices. Returns its index
 * or -1 (error set). The name is made from base and the op type. */
int od_pass_add_node(od_graph *g, const char *op_type, const char *name, int n_in, const int *in,
                     int n_out, const int *out, od_error *err);
/* Sets (replacing) an attribute of a node. */
od_status od_pass_set_attr_int(od_node *n, const char *name, int64_t v, od_error *err);
od_status od_pass_set_attr_float(od_node *n, const char *name, float v, od_error *err);
void od_pass_remove_attr(od_node *n, const char *name);
/* Sets input k of node n to v, growing the input list with omitted inputs as needed. */
od_status od_pass_set_input(od_node *n, int k, int v, od_error *err);

bool od_pass_is_graph_output(const od_graph *g, int v);
bool od_pass_is_graph_input(const od_graph *g, int v);

#endif
