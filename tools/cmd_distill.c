/* onnx-distill distill TEACHER.onnx --data PATH -o STUDENT.onnx [...] */
#include "cli.h"

#include <errno.h>
#include <libgen.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char distill_help[] =
    "usage: onnx-distill distill TEACHER.onnx --data PATH -o STUDENT.onnx [options]\n\n"
    "Builds a student from the teacher (or takes --student), trains it on the teacher's logits\n"
    "with noise added to them (Sau & Balasubramanian 2016), keeps the epoch that does best on a\n"
    "held-out split of the training set, and writes the student. Ctrl-C stops after the current\n"
    "batch; the last finished epoch is kept in the checkpoint for --resume.\n\n"
    "student:\n"
    "  --width W            keep W of every layer's channels, 0 < W <= 1 (default 0.5)\n"
    "  --depth D            keep D of the removable blocks, 0 < D <= 1 (default 1)\n"
    "  --spec FILE.json     per-layer control (see onnx-distill shrink --help)\n"
    "  --round N            round channel counts up to a multiple of N (default 8)\n"
    "  --init teacher|random  start from the teacher's strongest channels (default) or afresh\n"
    "  --bn auto|on|off     BatchNormalization after each conv while training (folded on write)\n"
    "  --student FILE.onnx  train this student instead of building one\n"
    "data:\n"
    "  --data PATH          IDX folder, CIFAR folder, .npz, or fashion-mnist\n"
    "  --scale F --mean LIST --std LIST   preprocessing (default: the teacher's metadata)\n"
    "  --val-split F        held out to pick the epoch kept (default 0.05)\n"
    "  --train-limit N      use only the first N training samples\n"
    "  --test-limit N       evaluate on the first N test samples only\n"
    "training:\n"
    "  --epochs N (5)  --batch N (64)  --threads N (2)  --seed S (1)\n"
    "                       (a student under 32 M MACs a training step trains on one thread:\n"
    "                       faster than two there)\n"
    "  --loss l2|kd|labels  L2 on logits (default, the paper's), Hinton's soft targets, or\n"
    "                       cross-entropy on the labels alone (a baseline without the teacher)\n"
    "  --temperature T      for kd (default 4)\n"
    "  --label-weight B     add B x cross-entropy on true labels (default 0)\n"
    "  --sigma S            noise on the teacher's logits, xi ~ N(0, S^2) (default 0.1; 0: plain)\n"
    "  --alpha A            fraction of each batch that gets noise (default 0.5)\n"
    "  --sigma-range LO,HI  draw sigma uniformly per batch instead\n"
    "  --optimizer sgd|adam|adamw (adam)  --lr F (0.002)  --momentum F (0.9)  --nesterov\n"
    "  --weight-decay F (0)  --schedule constant|step|cosine (cosine)  --warmup EPOCHS (0.3)\n"
    "  --step-epochs N (10) --step-gamma F (0.1)\n"
    "  --checkpoint FILE    checkpoint after every epoch (default: STUDENT.onnx.ckpt, removed\n"
    "                       after a successful run); a run holds STUDENT.onnx.lock meanwhile,\n"
    "                       and a second run on the same output is refused\n"
    "  --resume FILE        continue from a checkpoint: every option that changes the result,\n"
    "                       the student and the data must match; each difference is named\n"
    "output:\n"
    "  -o, --output FILE    the student (written atomically)\n"
    "  --weights f32|f16|int8  weight storage of the written student (default f32)\n"
    "  --report PATH        also write a report, .json, .md or .html by the extension: the summary\n"
    "                       plus hyper-parameters, the per-epoch curve, per-class accuracy, the\n"
    "                       confusion matrices and the samples the student gets wrong and the\n"
    "                       teacher right (and the reverse); HTML with inline SVG charts\n"
    "  --quiet              no progress lines\n";

static volatile sig_atomic_t stop_requested;
static void on_signal(int sig) {
    (void)sig;
    stop_requested = 1;
}

typedef struct progress_ctx {
    bool tty, quiet;
} progress_ctx;

static void show_progress(const od_distill_progress *p, void *ctx) {
    const progress_ctx *pc = ctx;
    if (pc->quiet) return;
    if (p->done) {
        const od_epoch_stats *e = p->done;
        fprintf(stderr, "%sepoch %d/%d  loss %.4f  %.0f samples/s  %.1f s", pc->tty ? "\r\033[K" : "", p->epoch, p->epochs, e->loss,
                e->samples_per_s, e->seconds);
        if (e->val_acc >= 0) fprintf(stderr, "  val acc %.2f%%", 100 * e->val_acc);
        if (e->val_agree >= 0) fprintf(stderr, "  val agree %.2f%%", 100 * e->val_agree);
        if (e->test_acc >= 0) fprintf(stderr, "  test acc %.2f%%", 100 * e->test_acc);
        if (e->test_agree >= 0) fprintf(stderr, "  test agree %.2f%%", 100 * e->test_agree);
        fputc('\n', stderr);
    } else if (pc->tty) {
        fprintf(stderr, "\r\033[Kepoch %d/%d  batch %lld/%lld  loss %.4f  %.0f samples/s  ETA %.0f s", p->epoch, p->epochs,
                (long long)p->batch, (long long)p->batches, p->loss, p->samples_per_s, p->eta_seconds);
    }
}

int cmd_distill(int argc, char **argv) {
    const char *teacher_path = NULL, *data_path = NULL, *out_path = NULL, *student_path = NULL, *report_path = NULL, *v;
    od_distill_options opt;
    od_distill_options_default(&opt);
    od_shrink_spec spec;
    od_shrink_spec_default(&spec);
    bool shrink_given = false, quiet = false;
    od_weight_format weights = OD_WEIGHTS_F32;
    cli_preprocess pre_flags = {0};
    long l;
    double d;
    for (int i = 1; i < argc; i++) {
        int pre_rc = cli_preprocess_option(argc, argv, &i, &pre_flags);
        if (pre_rc > 0) return 1;
        if (pre_rc == 0) continue;
        const char *a = argv[i];
        if (cli_flag(a, "--help") || cli_flag(a, "-h")) {
            fputs(distill_help, stdout);
            return 0;
        } else if (cli_opt(argc, argv, &i, "--data", &v)) {
            if (!(data_path = v)) return 1;
        } else if (cli_opt(argc, argv, &i, "-o", &v) || cli_opt(argc, argv, &i, "--output", &v)) {
            if (!(out_path = v)) return 1;
        } else if (cli_opt(argc, argv, &i, "--student", &v)) {
            if (!(student_path = v)) return 1;
        } else if (cli_opt(argc, argv, &i, "--width", &v)) {
            if (!cli_double("--width", v, 1e-9, 1, &d)) return 1;
            spec.width = d, shrink_given = true;
        } else if (cli_opt(argc, argv, &i, "--depth", &v)) {
            if (!cli_double("--depth", v, 1e-9, 1, &d)) return 1;
            spec.depth = d, shrink_given = true;
        } else if (cli_opt(argc, argv, &i, "--spec", &v)) {
            if (!(spec.spec_path = v)) return 1;
            shrink_given = true;
        } else if (cli_opt(argc, argv, &i, "--round", &v)) {
            if (!cli_int("--round", v, 1, 4096, &l)) return 1;
            spec.round_to = (int)l;
        } else if (cli_opt(argc, argv, &i, "--init", &v)) {
            if (!v || (strcmp(v, "teacher") && strcmp(v, "random"))) return cli_fail("distill: --init is teacher or random");
            spec.init = strcmp(v, "teacher") ? OD_SHRINK_INIT_RANDOM : OD_SHRINK_INIT_TEACHER;
        } else if (cli_opt(argc, argv, &i, "--bn", &v)) {
            if (!v || (strcmp(v, "auto") && strcmp(v, "on") && strcmp(v, "off"))) return cli_fail("distill: --bn is auto, on or off");
            spec.bn = !strcmp(v, "auto") ? OD_SHRINK_BN_AUTO : !strcmp(v, "on") ? OD_SHRINK_BN_ON : OD_SHRINK_BN_OFF;
        } else if (cli_opt(argc, argv, &i, "--epochs", &v)) {
            if (!cli_int("--epochs", v, 1, 100000, &l)) return 1;
            opt.epochs = (int)l;
        } else if (cli_opt(argc, argv, &i, "--batch", &v)) {
            if (!cli_int("--batch", v, 1, 65536, &l)) return 1;
            opt.batch = l;
        } else if (cli_opt(argc, argv, &i, "--threads", &v)) {
            if (!cli_int("--threads", v, 1, 256, &l)) return 1;
            opt.threads = (int)l;
        } else if (cli_opt(argc, argv, &i, "--seed", &v)) {
            if (!cli_int("--seed", v, 0, 0x7fffffffffffffffL, &l)) return 1;
            opt.seed = (uint64_t)l, spec.seed = (uint64_t)l;
        } else if (cli_opt(argc, argv, &i, "--loss", &v)) {
            if (!v || (strcmp(v, "l2") && strcmp(v, "kd") && strcmp(v, "labels")))
                return cli_fail("distill: --loss is l2, kd or labels");
            opt.loss = !strcmp(v, "l2") ? OD_LOSS_L2 : !strcmp(v, "kd") ? OD_LOSS_KD : OD_LOSS_LABELS;
        } else if (cli_opt(argc, argv, &i, "--temperature", &v)) {
            if (!cli_double("--temperature", v, 1e-3, 1e3, &d)) return 1;
            opt.temperature = (float)d;
        } else if (cli_opt(argc, argv, &i, "--label-weight", &v)) {
            if (!cli_double("--label-weight", v, 0, 1e3, &d)) return 1;
            opt.label_weight = (float)d;
        } else if (cli_opt(argc, argv, &i, "--sigma", &v)) {
            if (!cli_double("--sigma", v, 0, 100, &d)) return 1;
            opt.sigma = (float)d;
        } else if (cli_opt(argc, argv, &i, "--alpha", &v)) {
            if (!cli_double("--alpha", v, 0, 1, &d)) return 1;
            opt.alpha = (float)d;
        } else if (cli_opt(argc, argv, &i, "--sigma-range", &v)) {
            double lo, hi;
            char buf[64];
            const char *comma = v ? strchr(v, ',') : NULL;
            if (!comma) return cli_fail("distill: --sigma-range wants LO,HI");
            snprintf(buf, sizeof buf, "%.*s", (int)(comma - v), v);
            if (!cli_double("--sigma-range", buf, 0, 100, &lo) || !cli_double("--sigma-range", comma + 1, 0, 100, &hi)) return 1;
            if (hi <= lo) return cli_fail("distill: --sigma-range: HI must be above LO");
            opt.sigma_lo = (float)lo, opt.sigma_hi = (float)hi;
        } else if (cli_opt(argc, argv, &i, "--optimizer", &v)) {
            if (!v || (strcmp(v, "sgd") && strcmp(v, "adam") && strcmp(v, "adamw"))) return cli_fail("distill: --optimizer is sgd, adam or adamw");
            opt.optim.kind = !strcmp(v, "sgd") ? OD_OPTIM_SGD : !strcmp(v, "adam") ? OD_OPTIM_ADAM : OD_OPTIM_ADAMW;
            if (opt.optim.kind == OD_OPTIM_SGD && opt.optim.momentum == 0) opt.optim.momentum = 0.9f;
        } else if (cli_opt(argc, argv, &i, "--lr", &v)) {
            if (!cli_double("--lr", v, 1e-9, 100, &d)) return 1;
            opt.lr = (float)d;
        } else if (cli_opt(argc, argv, &i, "--momentum", &v)) {
            if (!cli_double("--momentum", v, 0, 0.999999, &d)) return 1;
            opt.optim.momentum = (float)d;
        } else if (cli_flag(a, "--nesterov")) {
            opt.optim.nesterov = true;
        } else if (cli_opt(argc, argv, &i, "--weight-decay", &v)) {
            if (!cli_double("--weight-decay", v, 0, 10, &d)) return 1;
            opt.optim.weight_decay = (float)d;
        } else if (cli_opt(argc, argv, &i, "--schedule", &v)) {
            if (!v || (strcmp(v, "constant") && strcmp(v, "step") && strcmp(v, "cosine"))) return cli_fail("distill: --schedule is constant, step or cosine");
            opt.sched = !strcmp(v, "constant") ? OD_SCHED_CONSTANT : !strcmp(v, "step") ? OD_SCHED_STEP : OD_SCHED_COSINE;
        } else if (cli_opt(argc, argv, &i, "--warmup", &v)) {
            if (!cli_double("--warmup", v, 0, 1000, &d)) return 1;
            opt.warmup_epochs = (float)d;
        } else if (cli_opt(argc, argv, &i, "--step-epochs", &v)) {
            if (!cli_int("--step-epochs", v, 1, 100000, &l)) return 1;
            opt.step_epochs = (int)l;
        } else if (cli_opt(argc, argv, &i, "--step-gamma", &v)) {
            if (!cli_double("--step-gamma", v, 1e-6, 1, &d)) return 1;
            opt.step_gamma = (float)d;
        } else if (cli_opt(argc, argv, &i, "--val-split", &v)) {
            if (!cli_double("--val-split", v, 0, 0.9, &d)) return 1;
            opt.val_split = (float)d;
        } else if (cli_opt(argc, argv, &i, "--train-limit", &v)) {
            if (!cli_int("--train-limit", v, 1, 0x7fffffffffffL, &l)) return 1;
            opt.train_limit = l;
        } else if (cli_opt(argc, argv, &i, "--test-limit", &v)) {
            if (!cli_int("--test-limit", v, 1, 0x7fffffffffffL, &l)) return 1;
            opt.test_limit = l;
        } else if (cli_opt(argc, argv, &i, "--checkpoint", &v)) {
            if (!(opt.checkpoint = v)) return 1;
        } else if (cli_opt(argc, argv, &i, "--resume", &v)) {
            if (!(opt.resume = v)) return 1;
        } else if (cli_opt(argc, argv, &i, "--weights", &v)) {
            od_error werr = {0};
            if (!v || od_weight_format_parse(v, &weights, &werr)) return cli_fail("distill: --weights is f32, f16 or int8");
        } else if (cli_opt(argc, argv, &i, "--report", &v)) {
            if (!(report_path = v)) return 1;
        } else if (cli_flag(a, "--quiet")) {
            quiet = true;
        } else if (a[0] == '-') {
            return cli_fail("distill: unknown option %s (see onnx-distill distill --help)", a);
        } else if (teacher_path) {
            return cli_fail("distill: one teacher at a time (%s and %s given)", teacher_path, a);
        } else {
            teacher_path = a;
        }
    }
    if (!teacher_path) return cli_fail("distill: no teacher given (see onnx-distill distill --help)");
    if (!data_path) return cli_fail("distill: no --data given");
    if (!out_path) return cli_fail("distill: no output given (-o STUDENT.onnx)");
    if (student_path && shrink_given) return cli_fail("distill: --student and --width/--depth/--spec exclude each other");
    if (!shrink_given && !student_path) spec.width = 0.5;
    od_report_format report_fmt;
    od_error report_err = {0};
    if (report_path && od_report_format_from_path(report_path, &report_fmt, &report_err))
        return cli_fail("distill: --report %s", report_err.message);
    /* no output may be an input (the checkpoint may be the one resumed), nor share a file */
    od_error out_err = {0};
    const char *outs[] = {out_path, report_path, opt.checkpoint};
    const char *ins[] = {teacher_path, student_path, data_path, spec.spec_path, opt.resume};
    if (od_outputs_check(outs, 2, ins, 5, &out_err) || od_outputs_check(outs, 3, ins, 4, &out_err))
        return cli_fail_err(&out_err);
    /* a folder that cannot take the files is found now, not after the training */
    const char *outputs[] = {out_path, opt.checkpoint, report_path};
    for (size_t k = 0; k < sizeof outputs / sizeof *outputs; k++) {
        if (!outputs[k]) continue;
        char *dir = strdup(outputs[k]);
        int ok = dir && access(dirname(dir), W_OK | X_OK) == 0, e = errno;
        free(dir);
        if (!ok) return cli_fail("%s: cannot write there: %s", outputs[k], strerror(e));
    }

    int rc = 1;
    od_error err = {0};
    od_model *teacher = NULL, *student = NULL;
    od_data_split data = {0};
    od_distill_result res = {0};
    od_report rep;
    od_report_init(&rep);
    char default_ckpt[4096];
    bool own_ckpt = false;
    od_output_lock *out_lock = NULL, *ckpt_lock = NULL; /* a second run on the same files is refused */
    double t_start = od_seconds();
    if (od_output_lock_acquire(out_path, &out_lock, &err) ||
        (opt.checkpoint && od_output_lock_acquire(opt.checkpoint, &ckpt_lock, &err)))
        goto fail;
    if (od_model_load(teacher_path, &teacher, &err)) goto fail;
    if (student_path ? od_model_load(student_path, &student, &err) : od_shrink(teacher, &spec, &student, &err)) goto fail;
    if (od_data_load(data_path, &data, &err)) goto fail;
    od_preprocess pre;
    if (od_preprocess_from_model(teacher, &pre, &err)) {
        od_error_prefix(&err, "%s: ", teacher_path);
        goto fail;
    }
    cli_preprocess_apply(&pre_flags, &pre);
    if (od_preprocess_check(&pre, &data.train, &err)) goto fail;
    if (!opt.checkpoint && !od_output_is_stream(out_path)) { /* no OUT.ckpt beside /dev/null */
        snprintf(default_ckpt, sizeof default_ckpt, "%s.ckpt", out_path);
        opt.checkpoint = default_ckpt;
        own_ckpt = true;
    }
    stop_requested = 0;
    opt.stop = &stop_requested;
    struct sigaction sa = {0}, old_int, old_term;
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    progress_ctx pc = {isatty(2), quiet};
    opt.progress = show_progress;
    opt.progress_ctx = &pc;
    double t_loaded = od_seconds();
    od_status st = od_distill(teacher, student, &data, &pre, &opt, &res, &err);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    if (st) { /* diverged, collapsed or learned nothing: a resume would end the same way */
        if (own_ckpt) unlink(opt.checkpoint);
        goto fail;
    }
    if (res.interrupted) {
        /* the checkpoint holds the state only if this run finished an epoch; else the one resumed */
        const char *state = res.n_epochs > res.resumed_epochs ? opt.checkpoint : res.n_epochs > 0 ? opt.resume : NULL;
        if (state)
            cli_fail("interrupted during epoch %d; the state after epoch %d is in %s: continue with --resume %s", res.n_epochs + 1,
                     res.n_epochs, state, state);
        else
            cli_fail("interrupted before the first epoch finished; nothing to resume from");
        rc = 130;
        goto done;
    }
    double t_w = od_seconds();
    char spec_text[512];
    if (student_path)
        snprintf(spec_text, sizeof spec_text, "student %s", student_path);
    else
        snprintf(spec_text, sizeof spec_text, "width %g depth %g round %d init %s bn %s%s%s", spec.width, spec.depth, spec.round_to,
                 spec.init == OD_SHRINK_INIT_TEACHER ? "teacher" : "random",
                 spec.bn == OD_SHRINK_BN_AUTO ? "auto" : spec.bn == OD_SHRINK_BN_ON ? "on" : "off", spec.spec_path ? " spec " : "",
                 spec.spec_path ? spec.spec_path : "");
    if (od_distill_finish(student, teacher, teacher_path, spec_text, &opt, &res, weights, &err) ||
        od_model_save(student, out_path, &err))
        goto fail;
    double t_written = od_seconds();
    if (own_ckpt) unlink(opt.checkpoint);
    /* the summary (and report): both models as written, measured and evaluated on the test split */
    if (!quiet) fprintf(stderr, "measuring latency and accuracy of teacher and student\n");
    od_report_options ro;
    od_report_options_default(&ro);
    od_dataset test = data.test;
    if (opt.test_limit > 0 && opt.test_limit < test.n) test.n = opt.test_limit;
    if (od_report_add_model(&rep, "teacher", teacher_path, teacher, &ro, &err) ||
        od_report_add_model(&rep, "student", od_output_is_stream(out_path) ? NULL : out_path, student, &ro, &err) || od_report_set_data(&rep, data_path, teacher, &err) ||
        (test.n > 0 && (od_report_evaluate(&rep, 0, teacher, &test, &pre, opt.threads, &err) ||
                        od_report_evaluate(&rep, 1, student, &test, &pre, opt.threads, &err))) ||
        od_report_set_distill(&rep, &opt, &res, spec_text, od_weight_format_name(weights), &err))
        goto fail;
    od_report_distill *rd = &rep.distill;
    rd->loading = (od_report_phase){t_loaded - t_start + res.t_load, data.train.n + data.test.n};
    rd->teacher_logits = (od_report_phase){res.t_teacher, res.n_train + res.n_val + res.n_test};
    rd->training = (od_report_phase){res.t_train, res.n_train / opt.batch * opt.batch * res.n_epochs};
    rd->writing = (od_report_phase){t_written - t_w, 0};
    rd->total_seconds = t_written - t_start;
    rd->measuring = (od_report_phase){od_seconds() - t_written, 0};
    putchar('\n');
    od_report_print(&rep, stdout);
    if (report_path && od_report_save(&rep, report_path, &err)) goto fail;
    printf("wrote %s\n", out_path);
    if (report_path) printf("wrote %s\n", report_path);
    rc = 0;
    goto done;
fail:
    cli_fail_err(&err);
done:
    od_report_clear(&rep);
    od_distill_result_clear(&res);
    od_shrink_spec_clear(&spec);
    od_data_split_clear(&data);
    od_model_destroy(student);
    od_model_destroy(teacher);
    od_output_lock_release(ckpt_lock);
    od_output_lock_release(out_lock);
    return rc;
}
