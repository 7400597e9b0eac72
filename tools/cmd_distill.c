/* onnx-distill distill TEACHER.onnx --data PATH -o STUDENT.onnx [...] */
#include "cli.h"

#include <errno.h>
#include <libgen.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const cli_command cli_cmd_distill = {
    .name = "distill",
    .summary = "train a small student on a (noisy) teacher's logits, write it",
    .synopsis = "TEACHER.onnx [TEACHER2.onnx ...] --data PATH -o STUDENT.onnx [options]",
    .min_operands = 1, .max_operands = 16, .operand = "teacher",
    .about = "Builds a student from the teacher (--width 0.5 unless --width, --depth, --spec or --student is "
             "given), trains it on the teacher's logits with noise added to them (Sau & Balasubramanian 2016), "
             "keeps the epoch that does best on a held-out split of the training set, and writes the student. "
             "Several teachers (the same input and output shapes) are averaged or drawn from (--teachers); the "
             "student is built from the first. "
             "Ctrl-C stops after the current batch; the last finished epoch is kept in the checkpoint for "
             "--resume.",
    .options = (const cli_option[]){
        {CLI_HEADING, .help = "student:"},
        CLI_OPTS_SHRINK,
        {CLI_TEXT, "--student", 0, "FILE.onnx", .help = "train this student instead of building one"},
        {CLI_HEADING, .help = "data:"},
        CLI_OPT_DATA("the training and test data"),
        {CLI_TEXT, "--unlabeled", 0, "PATH",
         .help = "more training images, in --data's formats, their labels ignored: the teachers' logits label them. "
                 "Its training split is used; the validation split and the test set come from --data alone. With "
                 "--loss labels or --label-weight they contribute the logit term only"},
        CLI_OPTS_PREPROCESS,
        {CLI_REAL, "--val-split", 0, "F", 0, 0.9, .dflt = "0.05", .help = "held out to pick the epoch kept"},
        {CLI_INT, "--train-limit", 0, "N", 1, 0x7fffffffffffLL, .help = "use only the first N training samples"},
        {CLI_INT, "--test-limit", 0, "N", 1, 0x7fffffffffffLL, .help = "evaluate on the first N test samples only"},
        {CLI_FLAG, "--augment",
         .help = "random-resized crop and horizontal flip of training batches, seeded (off by default: the student "
                 "then sees what the teacher's logits were computed on)"},
        {CLI_HEADING, .help = "training:"},
        {CLI_INT, "--epochs", 0, "N", 1, 100000, .dflt = "5", .help = "passes over the training set"},
        {CLI_INT, "--batch", 0, "N", 1, 65536, .dflt = "64", .help = "samples per training step"},
        CLI_OPT_THREADS("2"),
        CLI_OPT_SEED,
        {CLI_FLAG, "--deterministic",
         .help = "compute each batch as 4 fixed slices summed in a fixed order, so 1, 2 or 4 MPI ranks give "
                 "byte-identical students (BatchNormalization statistics per slice)"},
        {CLI_CHOICE, "--loss", 0, NULL, .choices = "l2|kd|labels", .dflt = "l2",
         .help = "L2 on logits (the paper's), Hinton's soft targets, or cross-entropy on the labels alone (a "
                 "baseline without the teacher)"},
        {CLI_REAL, "--temperature", 0, "T", 1e-3, 1e3, .dflt = "4", .help = "for kd"},
        {CLI_REAL, "--label-weight", 0, "B|auto", 0, 1e3, .choices = "auto", .dflt = "0",
         .help = "add B x cross-entropy on true labels (the labels-and-logits objective); auto: searched (see --sigma auto)"},
        {CLI_REAL, "--sigma", 0, "S|auto", 0, 100, .choices = "auto", .dflt = "0.1",
         .help = "noise on the teacher's logits, xi ~ N(0, S^2); 0: plain distillation. auto: chosen on the validation "
                 "split by successive halving within --search-budget: the candidates (--sigma-candidates x "
                 "--alpha-candidates x --label-weight-candidates, sigma 0 and the labels alone always among them) "
                 "train from the same initial student and seed, the better half of each rung on to the next; the last "
                 "rung's 2 finalists train for the full --epochs and the better one's run is the student written "
                 "(nothing retrained). Progress per rung; the report lists every trial and why the winner won"},
        {CLI_REAL, "--alpha", 0, "A|auto", 0, 1, .choices = "auto", .dflt = "0.5",
         .help = "fraction of each batch that gets noise; auto: searched (see --sigma auto)"},
        {CLI_REAL_LIST, "--sigma-candidates", 0, "LIST", 0, 100, .dflt = "0,0.1,0.3,1", .help = "sigmas an auto search tries"},
        {CLI_REAL_LIST, "--alpha-candidates", 0, "LIST", 0.001, 1, .dflt = "0.1,0.5,1", .help = "alphas --alpha auto tries"},
        {CLI_REAL_LIST, "--label-weight-candidates", 0, "LIST", 0, 1e3, .dflt = "0,0.5",
         .help = "label weights --label-weight auto tries"},
        {CLI_REAL, "--search-budget", 0, "EPOCHS", 0.01, 1e6, .dflt = "2.5 x --epochs",
         .help = "epochs of training an auto search may spend: the 2 finalists' full runs, and the rest for the "
                 "earlier rungs (at 2.5, a search costs what 2.5 plain runs do). Rung 1 trains each candidate 50 batches "
                 "or more (an epoch at most); a budget that cannot pay that tries fewer (the plain teacher and the "
                 "labels alone always) and says which budget tries all"},
        {CLI_REAL_LIST, "--sigma-range", 0, "LO,HI", 0, 100, .min_items = 2, .max_items = 2,
         .help = "draw sigma uniformly per batch instead"},
        {CLI_CHOICE, "--teachers", 0, NULL, .choices = "mean|draw", .dflt = "mean",
         .help = "with several teachers: their logits averaged, or one teacher drawn per sample each time it is used "
                 "(seeded)"},
        {CLI_CHOICE, "--noise-on", 0, NULL, .choices = "teacher|student", .dflt = "teacher",
         .help = "where the noise goes: the teacher's logits (the paper's method), or the student's own logits "
                 "before the loss, z <- z (1 + xi) for the same fraction alpha (the paper's Fig. 2 control)"},
        {CLI_CHOICE, "--optimizer", 0, NULL, .choices = "sgd|adam|adamw", .dflt = "adam", .help = "the optimiser"},
        {CLI_REAL, "--lr", 0, "F", 1e-9, 100, .dflt = "0.002", .help = "learning rate"},
        {CLI_REAL, "--lr-labels", 0, "F", 1e-9, 100, .dflt = "0.002, --loss labels' default rate",
         .help = "learning rate of an auto search's labels-only runs: its candidate, and the final training when it "
                 "wins (cross-entropy on labels wants another step size than L2 on logits, which --lr sets)"},
        {CLI_REAL, "--momentum", 0, "F", 0, 0.999999, .dflt = "0.9", .help = "sgd momentum"},
        {CLI_FLAG, "--nesterov", .help = "Nesterov momentum (sgd)"},
        {CLI_REAL, "--weight-decay", 0, "F", 0, 10, .dflt = "0", .help = "L2 penalty (decoupled with adamw)"},
        {CLI_CHOICE, "--schedule", 0, NULL, .choices = "constant|step|cosine", .dflt = "cosine", .help = "learning-rate schedule"},
        {CLI_REAL, "--warmup", 0, "EPOCHS", 0, 1000, .dflt = "0.3", .help = "linear warm-up"},
        {CLI_INT, "--step-epochs", 0, "N", 1, 100000, .dflt = "10", .help = "step schedule: every N epochs..."},
        {CLI_REAL, "--step-gamma", 0, "F", 1e-6, 1, .dflt = "0.1", .help = "...multiply the rate by F"},
        {CLI_TEXT, "--checkpoint", 0, "FILE", .dflt = "STUDENT.onnx.ckpt, removed after a successful run",
         .help = "checkpoint after every epoch; a run holds STUDENT.onnx.lock meanwhile, and a second run on the same "
                 "output is refused"},
        {CLI_TEXT, "--resume", 0, "FILE",
         .help = "continue from a checkpoint: every option that changes the result, the student and the data must "
                 "match; each difference is named"},
        {CLI_HEADING, .help = "output:"},
        CLI_OPT_OUTPUT("the student"),
        CLI_OPT_WEIGHTS,
        {CLI_TEXT, "--report", 0, "PATH",
         .help = "also write a report, .json, .md or .html by the extension: the summary plus hyper-parameters, "
                 "the per-epoch curve, per-class accuracy, the confusion matrices and the samples the student "
                 "gets wrong and the teacher right (and the reverse); HTML with inline SVG charts"},
        {CLI_CHOICE, "--latency", 0, NULL, .choices = "off|quick|full", .dflt = "full",
         .help = "time both models afterwards: full at batch 1 and 64 on 1 and 2 threads, quick at batch 1 on "
                 "--threads, off not at all"},
        {CLI_FLAG, "--no-latency", .help = "the same as --latency off"},
        {CLI_FLAG, "--quiet", .help = "no progress lines"},
        {0},
    },
    .notes = "A student under 32 M MACs a training step trains on one thread: faster than two there.\n"
             "Under mpirun (Open MPI) the ranks share the work: `mpirun -np N onnx-distill distill ...` with "
             "the same options; --batch is the global batch, --threads applies per rank, and rank 0 alone "
             "writes the student, checkpoint and report (see README, \"Several machines (MPI)\").",
};

static volatile sig_atomic_t stop_requested;
static void on_signal(int sig) {
    (void)sig;
    stop_requested = 1;
}

/* Under mpirun, SIGTERM means the job is being torn down (a rank died, or MPI_Abort): say so on
 * this rank and go; the checkpoint is written atomically, so the last one is intact. */
static char rank_gone_msg[512];
static void on_rank_gone(int sig) {
    (void)sig;
    ssize_t w = write(2, rank_gone_msg, strlen(rank_gone_msg));
    (void)w;
    _exit(CLI_EXIT_FAILURE);
}

typedef struct progress_ctx {
    bool tty, quiet;
} progress_ctx;

static void show_progress(const od_distill_progress *p, void *ctx) {
    const progress_ctx *pc = ctx;
    if (pc->quiet) return;
    if (p->search) { /* a rung of --sigma/--alpha/--label-weight auto: its trials, the ones going on marked */
        const od_search_result *sr = p->search;
        int first = sr->n_trials;
        while (first > 0 && sr->trials[first - 1].rung == p->search_rung) first--;
        char untried[320];
        od_search_untried_text(sr, untried, sizeof untried);
        if (p->search_rung == 1 && *untried) fprintf(stderr, "%ssearch: %s\n", pc->tty ? "\r\033[K" : "", untried);
        fprintf(stderr, "%ssearch rung %d/%d: %d candidate%s, %.2f epochs each (%s)\n", pc->tty ? "\r\033[K" : "", p->search_rung,
                sr->n_rungs, sr->n_trials - first, sr->n_trials - first == 1 ? "" : "s", first < sr->n_trials ? sr->trials[first].epochs : 0,
                sr->val_is_agreement ? "validation agreement" : "validation accuracy");
        for (int t = first; t < sr->n_trials; t++) {
            const od_search_trial *x = &sr->trials[t];
            char name[96];
            od_search_trial_name(x, name, sizeof name);
            fprintf(stderr, "  %-40s lr %-8g %s%6.2f%%%s\n", name, x->lr, x->val_acc < 0 ? "failed " : "", x->val_acc < 0 ? 0 : 100 * x->val_acc,
                    x->promoted ? (p->search_rung == sr->n_rungs ? "  <- winner" : "  -> next rung") : "");
        }
        return;
    }
    if (p->logits_total) {
        if (pc->tty) fprintf(stderr, "\r\033[Kteacher logits %lld/%lld", (long long)p->logits_done, (long long)p->logits_total);
        if (pc->tty && p->logits_done == p->logits_total) fputc('\n', stderr);
        return;
    }
    if (p->done) {
        const od_epoch_stats *e = p->done;
        fprintf(stderr, "%sepoch %d/%d  loss %.4f  %.0f samples/s  %.1f s", pc->tty ? "\r\033[K" : "", p->epoch, p->epochs, e->loss,
                e->samples_per_s, e->seconds);
        if (p->ranks > 1)
            fprintf(stderr, "  (%d ranks, %.0f samples/s each, %.0f%% communicating)", p->ranks, e->samples_per_s / p->ranks,
                    e->seconds > 0 ? 100 * e->comm_seconds / e->seconds : 0);
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
    const cli_command *cmd = &cli_cmd_distill;
    cli_args args;
    int parsed = cli_parse(cmd, argc, argv, &args);
    if (parsed >= 0) return parsed;
    const char *teacher_path = args.operands[0], *data_path = cli_text(&args, "--data", NULL),
               *out_path = cli_text(&args, "--output", NULL), *student_path = cli_text(&args, "--student", NULL),
               *report_path = cli_text(&args, "--report", NULL), *unlabeled_path = cli_text(&args, "--unlabeled", NULL);
    int n_teachers = args.n_operands;
    od_distill_options opt;
    od_distill_options_default(&opt);
    od_shrink_spec spec;
    od_shrink_spec_default(&spec);
    bool shrink_given = cli_given(&args, "--width") || cli_given(&args, "--depth") || cli_given(&args, "--spec");
    const char *budget_text = cli_text(&args, "--budget", NULL), *budget_out = cli_text(&args, "--budget-spec-out", NULL);
    double budget_time = 0; /* --budget-time, read with the other budget options */
    bool quiet = cli_given(&args, "--quiet");
    opt.deterministic = cli_given(&args, "--deterministic");
    spec.width = cli_real(&args, "--width", spec.width);
    spec.depth = cli_real(&args, "--depth", spec.depth);
    spec.spec_path = cli_text(&args, "--spec", NULL);
    spec.round_to = (int)cli_int(&args, "--round", spec.round_to);
    spec.init = cli_choice(&args, "--init", 0) ? OD_SHRINK_INIT_RANDOM : OD_SHRINK_INIT_TEACHER;
    spec.bn = (od_shrink_bn[]){OD_SHRINK_BN_AUTO, OD_SHRINK_BN_ON, OD_SHRINK_BN_OFF}[cli_choice(&args, "--bn", 0)];
    opt.epochs = (int)cli_int(&args, "--epochs", opt.epochs);
    opt.batch = cli_int(&args, "--batch", opt.batch);
    opt.threads = (int)cli_int(&args, "--threads", opt.threads);
    opt.seed = spec.seed = (uint64_t)cli_int(&args, "--seed", (long long)opt.seed);
    if (cli_given(&args, "--loss")) opt.loss = (od_loss_kind[]){OD_LOSS_L2, OD_LOSS_KD, OD_LOSS_LABELS}[cli_choice(&args, "--loss", 0)];
    opt.temperature = (float)cli_real(&args, "--temperature", opt.temperature);
    opt.label_weight_auto = cli_choice(&args, "--label-weight", -1) == 0;
    opt.sigma_auto = cli_choice(&args, "--sigma", -1) == 0;
    opt.alpha_auto = cli_choice(&args, "--alpha", -1) == 0;
    if (!opt.label_weight_auto) opt.label_weight = (float)cli_real(&args, "--label-weight", opt.label_weight);
    if (!opt.sigma_auto) opt.sigma = (float)cli_real(&args, "--sigma", opt.sigma);
    if (!opt.alpha_auto) opt.alpha = (float)cli_real(&args, "--alpha", opt.alpha);
    {
        const char *lists[] = {"--sigma-candidates", "--alpha-candidates", "--label-weight-candidates"};
        float *dst[] = {opt.sigma_candidates, opt.alpha_candidates, opt.label_weight_candidates};
        int *count[] = {&opt.n_sigma_candidates, &opt.n_alpha_candidates, &opt.n_label_weight_candidates};
        bool searched[] = {opt.sigma_auto, opt.alpha_auto, opt.label_weight_auto};
        for (int k = 0; k < 3; k++) {
            double v[16];
            int n = cli_real_list(&args, lists[k], v, 16);
            if (n > 0 && !searched[k]) {
                cli_args_clear(&args);
                return cli_usage(cmd, "%s: only with %.*s auto", lists[k], (int)(strlen(lists[k]) - 11), lists[k]);
            }
            for (int i = 0; i < n; i++) dst[k][i] = (float)v[i];
            *count[k] = n;
        }
    }
    opt.search_budget = cli_real(&args, "--search-budget", 0);
    bool any_auto = opt.sigma_auto || opt.alpha_auto || opt.label_weight_auto;
    if (cli_given(&args, "--search-budget") && !any_auto)
        return cli_args_clear(&args), cli_usage(cmd, "--search-budget: only with --sigma, --alpha or --label-weight auto");
    opt.noise_on = cli_choice(&args, "--noise-on", 0) == 1 ? OD_NOISE_STUDENT : OD_NOISE_TEACHER;
    opt.teachers = cli_choice(&args, "--teachers", 0) == 1 ? OD_TEACHERS_DRAW : OD_TEACHERS_MEAN;
    double range[2];
    if (cli_real_list(&args, "--sigma-range", range, 2) == 2) {
        if (range[1] <= range[0]) {
            cli_args_clear(&args);
            return cli_usage(cmd, "--sigma-range: HI must be above LO");
        }
        opt.sigma_lo = (float)range[0], opt.sigma_hi = (float)range[1];
    }
    if (cli_given(&args, "--optimizer")) {
        opt.optim.kind = (od_optim_kind[]){OD_OPTIM_SGD, OD_OPTIM_ADAM, OD_OPTIM_ADAMW}[cli_choice(&args, "--optimizer", 1)];
        if (opt.optim.kind == OD_OPTIM_SGD && opt.optim.momentum == 0) opt.optim.momentum = 0.9f;
    }
    opt.lr = (float)cli_real(&args, "--lr", opt.lr);
    opt.lr_labels = (float)cli_real(&args, "--lr-labels", opt.lr_labels);
    if (cli_given(&args, "--lr-labels") && !any_auto)
        return cli_args_clear(&args),
               cli_usage(cmd, "--lr-labels: only with --sigma, --alpha or --label-weight auto (--loss labels trains at --lr)");
    opt.optim.momentum = (float)cli_real(&args, "--momentum", opt.optim.momentum);
    if (cli_given(&args, "--nesterov")) opt.optim.nesterov = true;
    opt.optim.weight_decay = (float)cli_real(&args, "--weight-decay", opt.optim.weight_decay);
    if (cli_given(&args, "--schedule"))
        opt.sched = (od_sched_kind[]){OD_SCHED_CONSTANT, OD_SCHED_STEP, OD_SCHED_COSINE}[cli_choice(&args, "--schedule", 2)];
    opt.warmup_epochs = (float)cli_real(&args, "--warmup", opt.warmup_epochs);
    opt.step_epochs = (int)cli_int(&args, "--step-epochs", opt.step_epochs);
    opt.step_gamma = (float)cli_real(&args, "--step-gamma", opt.step_gamma);
    opt.val_split = (float)cli_real(&args, "--val-split", opt.val_split);
    opt.train_limit = cli_int(&args, "--train-limit", opt.train_limit);
    opt.test_limit = cli_int(&args, "--test-limit", opt.test_limit);
    opt.augment = cli_given(&args, "--augment");
    int latency = cli_given(&args, "--no-latency") ? 0 : cli_choice(&args, "--latency", 2); /* off, quick, full */
    opt.checkpoint = cli_text(&args, "--checkpoint", NULL);
    opt.resume = cli_text(&args, "--resume", NULL);
    od_weight_format weights = (od_weight_format[]){OD_WEIGHTS_F32, OD_WEIGHTS_F16, OD_WEIGHTS_INT8}[cli_choice(&args, "--weights", 0)];
    if (!data_path) return cli_args_clear(&args), cli_usage(cmd, "distill: no --data given");
    if (!out_path) return cli_args_clear(&args), cli_usage(cmd, "distill: no output given (-o STUDENT.onnx)");
    if (student_path && shrink_given)
        return cli_args_clear(&args), cli_usage(cmd, "distill: --student and --width/--depth/--spec exclude each other");
    if (budget_text && (student_path || cli_given(&args, "--width") || spec.spec_path))
        return cli_args_clear(&args), cli_usage(cmd, "distill: --budget and --student/--width/--spec exclude each other");
    if (budget_out && !budget_text) return cli_args_clear(&args), cli_usage(cmd, "distill: --budget-spec-out needs --budget");
    if (!shrink_given && !student_path && !budget_text) spec.width = 0.5;
    od_report_format report_fmt;
    od_error report_err = {0};
    od_budget budget;
    od_budget_result budget_res = {0};
    if (cli_given(&args, "--target") && !budget_text)
        return cli_args_clear(&args), cli_usage(cmd, "distill: --target needs --budget");
    if (cli_given(&args, "--budget-margin") && !budget_text)
        return cli_args_clear(&args), cli_usage(cmd, "distill: --budget-margin needs --budget");
    if (cli_given(&args, "--budget-time") && !budget_text)
        return cli_args_clear(&args), cli_usage(cmd, "distill: --budget-time needs --budget");
    if (budget_text && (od_budget_parse(budget_text, &budget, &report_err) || cli_budget_target(&args, &budget, &budget_time, &report_err)))
        return cli_args_clear(&args), cli_fail_err(&report_err);
    if (report_path && od_report_format_from_path(report_path, &report_fmt, &report_err))
        return cli_args_clear(&args), cli_usage(cmd, "--report %s", report_err.message);
    /* no output may be an input (the checkpoint may be the one resumed), nor share a file */
    const char *outs[] = {out_path, report_path, budget_out, opt.checkpoint};
    const char *ins[5 + 17] = {teacher_path, student_path, data_path, spec.spec_path};
    int n_ins = 4;
    if (unlabeled_path) ins[n_ins++] = unlabeled_path;
    for (int k = 1; k < n_teachers; k++) ins[n_ins++] = args.operands[k];
    ins[n_ins++] = opt.resume; /* last: the checkpoint may be the one resumed */
    if (od_outputs_check(outs, 3, ins, n_ins, &report_err) || od_outputs_check(outs, 4, ins, n_ins - 1, &report_err))
        return cli_args_clear(&args), cli_fail_err(&report_err);
    /* a folder that cannot take the files is found now, not after the training */
    const char *outputs[] = {out_path, opt.checkpoint, report_path, budget_out};
    for (size_t k = 0; k < sizeof outputs / sizeof *outputs; k++) {
        if (!outputs[k]) continue;
        char *dir = strdup(outputs[k]);
        int ok = dir && access(dirname(dir), W_OK | X_OK) == 0, e = errno;
        free(dir);
        if (!ok) return cli_args_clear(&args), cli_fail("%s: cannot write there: %s", outputs[k], strerror(e));
    }

    int rc = 1;
    od_error err = {0};
    od_comm *comm = NULL;
    if (od_comm_create(&comm, &err)) return cli_args_clear(&args), cli_fail_err(&err), CLI_EXIT_FAILURE;
    int rank = od_comm_rank(comm), ranks = od_comm_size(comm);
    opt.comm = comm;
    /* rank 0 speaks for the job: the others keep stderr for their errors and nothing else */
    if (rank > 0 && (quiet = true) && !freopen("/dev/null", "w", stdout)) {
        cli_args_clear(&args);
        od_comm_destroy(comm);
        return cli_fail("rank %d: cannot silence stdout", rank);
    }
    od_model *teacher = NULL, *student = NULL, *more_teachers[16] = {0};
    od_data_split data = {0}, unlabeled = {0};
    od_distill_result res = {0};
    od_report rep;
    od_report_init(&rep);
    char default_ckpt[4096];
    bool own_ckpt = false;
    od_output_lock *out_lock = NULL, *ckpt_lock = NULL; /* a second run on the same files is refused */
    double t_start = od_seconds();
    if (rank == 0 && (od_output_lock_acquire(out_path, &out_lock, &err) ||
                      (opt.checkpoint && od_output_lock_acquire(opt.checkpoint, &ckpt_lock, &err))))
        goto fail;
    if (od_model_load(teacher_path, &teacher, &err)) goto fail;
    /* a teacher the engine cannot run is refused now, naming its file, before building a student */
    if (od_graph_check_supported(&teacher->graph, &err)) {
        od_error_prefix(&err, "%s: ", teacher_path);
        goto fail;
    }
    for (int k = 1; k < n_teachers; k++) {
        if (od_model_load(args.operands[k], &more_teachers[k - 1], &err)) goto fail;
        if (od_graph_check_supported(&more_teachers[k - 1]->graph, &err) ||
            od_teachers_check(teacher, more_teachers[k - 1], &err)) {
            od_error_prefix(&err, "%s: ", args.operands[k]);
            goto fail;
        }
    }
    opt.more_teachers = (const od_model *const *)more_teachers;
    opt.n_more_teachers = n_teachers - 1;
    if (budget_text && budget.kind == OD_BUDGET_LATENCY && ranks > 1) {
        /* every rank would time its own candidates and might choose another student */
        od_error_set(&err, OD_STATUS_INVALID_ARGUMENT, "--budget: a latency budget is not searched under MPI "
                     "(each rank would measure its own); run shrink --budget first and pass its spec with --spec");
        goto fail;
    }
    if (budget_text) {
        if (cli_budget_choose(teacher, &budget, budget_time, rank == 0 ? budget_out : NULL, &spec, &budget_res, NULL, &err))
            goto fail;
        od_shrink_report shrunk = {0}; /* the chosen student, built with the builder's summary */
        if (od_shrink_ex(teacher, &spec, &student, &shrunk, &err)) goto fail;
        od_shrink_report_print(&shrunk, &spec, stdout, stderr);
        od_shrink_report_clear(&shrunk);
    } else if (student_path) {
        if (od_model_load(student_path, &student, &err)) goto fail;
    } else {
        od_shrink_report shrunk = {0};
        if (od_shrink_ex(teacher, &spec, &student, &shrunk, &err)) goto fail;
        od_shrink_report_print(&shrunk, &spec, stdout, stderr);
        od_shrink_report_clear(&shrunk);
    }
    /* several ranks: each reads its shard of the training samples (not with --unlabeled) */
    bool shard = ranks > 1 && !unlabeled_path;
    if (cli_data_load_shard(&args, data_path, teacher, opt.threads, quiet, shard ? rank : 0, shard ? ranks : 1, opt.train_limit,
                            &data, &err))
        goto fail;
    od_preprocess pre;
    if (od_preprocess_from_model(teacher, &pre, &err)) {
        od_error_prefix(&err, "%s: ", teacher_path);
        goto fail;
    }
    cli_preprocess_apply(&args, &pre);
    if (od_preprocess_check(&pre, &data.train, &err)) goto fail;
    if (unlabeled_path) {
        if (cli_data_load(&args, unlabeled_path, teacher, opt.threads, quiet, &unlabeled, &err)) goto fail;
        if (od_preprocess_check(&pre, &unlabeled.train, &err)) {
            od_error_prefix(&err, "%s: ", unlabeled_path);
            goto fail;
        }
        opt.unlabeled = &unlabeled.train;
    }
    char pre_text[256];
    printf("preprocessing: %s (%s)\n", od_preprocess_describe(&pre, pre_text, sizeof pre_text),
           pre.from_model ? "the teacher's preprocess.* metadata, then the options"
                          : "the teacher has no preprocess.* metadata: the default, then the options");
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
    if (ranks > 1) {
        snprintf(rank_gone_msg, sizeof rank_gone_msg,
                 "onnx-distill: rank %d of %d: the MPI job is ending (a rank died or failed); the last checkpoint, "
                 "%s, is intact: continue with --resume %s\n",
                 rank, ranks, opt.checkpoint, opt.checkpoint);
        sa.sa_handler = on_rank_gone;
    }
    sigaction(SIGTERM, &sa, &old_term);
    progress_ctx pc = {isatty(2), quiet};
    opt.progress = show_progress;
    opt.progress_ctx = &pc;
    double t_loaded = od_seconds();
    od_status st = od_distill(teacher, student, &data, &pre, &opt, &res, &err);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    if (st) { /* diverged, collapsed or learned nothing: a resume would end the same way */
        /* not after an I/O error: a rank that died (or a full disk) leaves the last checkpoint for --resume */
        if (own_ckpt && rank == 0 && st != OD_STATUS_IO) unlink(opt.checkpoint);
        goto fail;
    }
    if (rank > 0) { /* the student, checkpoint and report are rank 0's */
        rc = res.interrupted ? CLI_EXIT_INTERRUPTED : 0;
        goto done;
    }
    if (res.interrupted) {
        /* the checkpoint holds the state only if this run finished an epoch; else the one resumed */
        const char *state = res.n_epochs > res.resumed_epochs ? opt.checkpoint : res.n_epochs > 0 ? opt.resume : NULL;
        if (state)
            cli_fail("interrupted during epoch %d; the state after epoch %d is in %s: continue with --resume %s", res.n_epochs + 1,
                     res.n_epochs, state, state);
        else
            cli_fail("interrupted before the first epoch finished; nothing to resume from");
        rc = CLI_EXIT_INTERRUPTED;
        goto done;
    }
    if (res.search.n_trials > 0) { /* the student was trained with the winner's values */
        const od_search_result *sr = &res.search;
        opt.loss = res.loss, opt.sigma = res.sigma, opt.alpha = res.alpha, opt.label_weight = res.label_weight, opt.lr = res.lr;
        printf("search: %d candidates, %d trials over %d rung%s, %.2f of %.4g budget epochs, %.1f s; %s\n", sr->n_candidates, sr->n_trials,
               sr->n_rungs, sr->n_rungs == 1 ? "" : "s", sr->search_epochs, sr->budget_epochs, sr->seconds, sr->why);
        char untried[320];
        od_search_untried_text(sr, untried, sizeof untried);
        if (*untried) printf("search: %s\n", untried);
        if (res.loss == OD_LOSS_LABELS) printf("search: the student is the winning finalist's %d-epoch run: --loss labels --lr %g\n", opt.epochs, res.lr);
        else printf("search: the student is the winning finalist's %d-epoch run: see the options below\n", opt.epochs);
    }
    printf("teacher logits: cached for %lld training samples (%lld labelled, %lld unlabelled), %d teacher%s%s\n",
           (long long)res.n_logits_cached, (long long)(res.n_logits_cached - res.n_unlabeled), (long long)res.n_unlabeled,
           res.n_teachers, res.n_teachers > 1 ? "s, " : "",
           res.n_teachers > 1 ? (opt.teachers == OD_TEACHERS_DRAW ? "one drawn per sample" : "logits averaged") : "");
    double t_w = od_seconds();
    char spec_text[4096];
    if (student_path)
        snprintf(spec_text, sizeof spec_text, "student %s", student_path);
    else
        snprintf(spec_text, sizeof spec_text, "width %g depth %g round %d init %s bn %s%s%s", spec.width, spec.depth, spec.round_to,
                 spec.init == OD_SHRINK_INIT_TEACHER ? "teacher" : "random",
                 spec.bn == OD_SHRINK_BN_AUTO ? "auto" : spec.bn == OD_SHRINK_BN_ON ? "on" : "off", spec.spec_path ? " spec " : "",
                 spec.spec_path ? spec.spec_path : "");
    size_t spec_len = strlen(spec_text);
    if (budget_text) { /* the report shows what the budget chose and why */
        snprintf(spec_text + spec_len, sizeof spec_text - spec_len, "; ");
        spec_len = strlen(spec_text);
        od_budget_summary(&budget, &budget_res, spec_text + spec_len, sizeof spec_text - spec_len - 512);
        spec_len = strlen(spec_text);
    }
    /* the report shows the preprocessing too */
    snprintf(spec_text + spec_len, sizeof spec_text - spec_len, "; preprocessing %s", pre_text);
    if (od_distill_finish(student, teacher, teacher_path, spec_text, &opt, &res, weights, &err) ||
        od_preprocess_to_model(student, &pre, &err) ||
        od_model_save(student, out_path, &err))
        goto fail;
    double t_written = od_seconds();
    if (own_ckpt) unlink(opt.checkpoint);
    /* the summary (and report): both models as written, measured and evaluated on the test split */
    od_report_options ro;
    od_report_options_default(&ro);
    if (latency == 0) {
        ro.n_batches = 0;
    } else if (latency == 1) {
        ro.n_batches = ro.n_threads = 1;
        ro.batches[0] = 1, ro.threads[0] = opt.threads, ro.min_time = 0.1;
    }
    if (!quiet)
        fprintf(stderr, "measuring %saccuracy of teacher and student\n", ro.n_batches ? "latency (--latency off skips it) and " : "");
    od_dataset test = data.test;
    if (opt.test_limit > 0 && opt.test_limit < test.n) test.n = opt.test_limit;
    if (od_report_add_model(&rep, "teacher", teacher_path, teacher, &ro, &err) ||
        od_report_add_model(&rep, "student", od_output_is_stream(out_path) ? NULL : out_path, student, &ro, &err) ||
        od_report_set_data(&rep, data_path, teacher, &err) ||
        od_report_set_class_names(&rep, data.class_names, data.n_class_names, &err) ||
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
    if (res.ranks > 1 || opt.deterministic) {
        double sps = res.t_train > 0 ? (double)rd->training.samples / res.t_train : 0;
        printf("data-parallel   %d rank%s (%s%s), %.0f samples/s in total, %.0f per rank, communication %.2f s (%.1f%% of "
               "training)\n",
               res.ranks, res.ranks == 1 ? "" : "s", od_comm_kind(comm), opt.deterministic ? ", deterministic" : "", sps,
               sps / res.ranks, res.t_comm, res.t_train > 0 ? 100 * res.t_comm / res.t_train : 0);
        if (data.train.held > 0) /* rank 0's shard; the others' differ by one sample at most */
            printf("data-parallel   each rank holds its shard of the training samples: rank 0 %lld of %lld\n",
                   (long long)data.train.held,
                   (long long)(opt.train_limit > 0 && opt.train_limit < data.train.n ? opt.train_limit : data.train.n));
    }
    if (report_path && od_report_save(&rep, report_path, &err)) goto fail;
    printf("wrote %s\n", out_path);
    if (report_path) printf("wrote %s\n", report_path);
    rc = 0;
    goto done;
fail:
    cli_fail_err(&err);
    /* the other ranks would wait for this one forever: end them all */
    if (ranks > 1) od_comm_abort(comm, CLI_EXIT_FAILURE);
done:
    cli_args_clear(&args);
    od_report_clear(&rep);
    od_distill_result_clear(&res);
    od_shrink_spec_clear(&spec);
    od_data_split_clear(&data);
    od_data_split_clear(&unlabeled);
    for (int k = 0; k < 16; k++) od_model_destroy(more_teachers[k]);
    od_model_destroy(student);
    od_model_destroy(teacher);
    od_output_lock_release(ckpt_lock);
    od_output_lock_release(out_lock);
    od_comm_destroy(comm);
    return rc;
}
