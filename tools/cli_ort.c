/* `--budget ... --target ort`: candidates timed by ONNX Runtime for Node (node and the
 * onnxruntime-node package, found through OD_ORT_NODE_PATH or NODE_PATH; never downloaded). Each
 * candidate is written to a temporary file and timed by one node process, like
 * tests/ort_bench.js: warm-up, then runs for min_time seconds (at least 10), median and p90. */
#include "cli.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const char ort_script[] =
    "const ort=require('onnxruntime-node');"
    "const [file,batch,threads,minTime]=process.argv.slice(1);"
    "(async()=>{"
    "if(file==='version'){console.log(require('onnxruntime-node/package.json').version);return;}"
    "const s=await ort.InferenceSession.create(file,{intraOpNumThreads:+threads,interOpNumThreads:1,"
    "executionMode:'sequential',graphOptimizationLevel:'all'});"
    "const feeds={},meta=s.inputMetadata||[];"
    "for(const name of s.inputNames){"
    "const m=Array.isArray(meta)?meta.find(x=>x.name===name):null;"
    "const dims=m&&m.shape?m.shape.map((d,i)=>(typeof d==='number'&&d>0?d:(i===0?+batch:1))):[+batch];"
    "dims[0]=+batch;const n=dims.reduce((a,b)=>a*b,1);const x=new Float32Array(n);"
    "for(let i=0;i<n;i++)x[i]=Math.sin(i);feeds[name]=new ort.Tensor('float32',x,dims);}"
    "const warmEnd=performance.now()+Math.min(200,+minTime*200);"
    "for(let i=0;i<3||performance.now()<warmEnd;i++)await s.run(feeds);"
    "const t=[];const start=performance.now();"
    "while(t.length<10||(performance.now()-start)/1000<+minTime){const t0=performance.now();await s.run(feeds);"
    "t.push((performance.now()-t0)/1000);}"
    "t.sort((a,b)=>a-b);const n=t.length;"
    "console.log(n%2?t[(n-1)/2]:0.5*(t[n/2-1]+t[n/2]),t[Math.floor(n*9/10)]);"
    "})().catch(e=>{console.error(e.message||e);process.exit(1);});";

/* Runs node on the script with args; its stdout (first line) in out. */
static od_status run_node(const char *const args[4], bool quiet, char *out, size_t size, od_error *err) {
    int fd[2];
    if (pipe(fd)) return od_error_set(err, OD_STATUS_IO, "--target ort: pipe: %s", strerror(errno));
    pid_t pid = fork();
    if (pid < 0) {
        close(fd[0]), close(fd[1]);
        return od_error_set(err, OD_STATUS_IO, "--target ort: fork: %s", strerror(errno));
    }
    if (pid == 0) {
        dup2(fd[1], 1);
        close(fd[0]), close(fd[1]);
        if (quiet && !freopen("/dev/null", "w", stderr)) _exit(126);
        const char *dir = getenv("OD_ORT_NODE_PATH");
        if (dir && *dir) {
            const char *old = getenv("NODE_PATH");
            char *both = malloc(strlen(dir) + (old ? strlen(old) : 0) + 2);
            if (both) {
                sprintf(both, old && *old ? "%s:%s" : "%s", dir, old ? old : "");
                setenv("NODE_PATH", both, 1);
            }
        }
        execlp("node", "node", "-e", ort_script, args[0], args[1], args[2], args[3], (char *)NULL);
        _exit(127);
    }
    close(fd[1]);
    size_t n = 0;
    ssize_t k;
    while ((k = read(fd[0], out + n, size - 1 - n)) > 0 && n + (size_t)k < size - 1) n += (size_t)k;
    if (k > 0) n += (size_t)k;
    out[n] = 0;
    close(fd[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    if (!WIFEXITED(status) || WEXITSTATUS(status))
        return od_error_set(err, OD_STATUS_BACKEND,
                            WIFEXITED(status) && WEXITSTATUS(status) == 127 ? "--target ort: node not found on PATH"
                            : quiet ? "--target ort: ONNX Runtime for Node not found (node with the onnxruntime-node "
                                      "package; set OD_ORT_NODE_PATH or NODE_PATH to the node_modules folder holding "
                                      "it; it is never downloaded)"
                                    : "--target ort: ONNX Runtime failed on a candidate (its message is above)");
    return OD_STATUS_OK;
}

od_status cli_ort_check(char *version, size_t size, od_error *err) {
    const char *args[4] = {"version", "1", "1", "0"};
    char out[256];
    od_status st = run_node(args, true, out, sizeof out, err);
    if (st) return st;
    out[strcspn(out, "\r\n")] = 0;
    snprintf(version, size, "ONNX Runtime %s (onnxruntime-node)", out);
    return OD_STATUS_OK;
}

od_status cli_ort_timer(const od_model *m, int64_t batch, int threads, double min_time, double *median, double *p90,
                        void *ctx, od_error *err) {
    (void)ctx;
    const char *tmp = getenv("TMPDIR");
    char path[4096], b[32], t[32], mt[32], out[256];
    snprintf(path, sizeof path, "%s/od-budget-XXXXXX.onnx", tmp && *tmp ? tmp : "/tmp");
    int fd = mkstemps(path, 5);
    if (fd < 0) return od_error_set(err, OD_STATUS_IO, "--target ort: %s: %s", path, strerror(errno));
    close(fd);
    od_status st = od_model_save(m, path, err);
    snprintf(b, sizeof b, "%lld", (long long)batch);
    snprintf(t, sizeof t, "%d", threads);
    snprintf(mt, sizeof mt, "%g", min_time);
    const char *args[4] = {path, b, t, mt};
    if (!st) st = run_node(args, false, out, sizeof out, err);
    unlink(path);
    if (st) return st;
    if (sscanf(out, "%lf %lf", median, p90) != 2)
        return od_error_set(err, OD_STATUS_BACKEND, "--target ort: unexpected output from node: %.100s", out);
    return OD_STATUS_OK;
}
