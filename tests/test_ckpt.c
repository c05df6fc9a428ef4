/* test_ckpt.c: checkpoint save/load: bit-exact round trips of parameters, AdamW moments,
 * step and RNG state; and every refusal (dims mismatch, missing or misshapen tensor,
 * non-finite values on save and on load, foreign files). A failed load must leave the
 * model and optimizer untouched. Runs without MPI; main() returns non-zero on failure.
 */
#define _GNU_SOURCE
#include "prefer/ckpt.h"
#include "prefer/h5util.h"
#include "prefer/prefdata.h"
#include "prefer/util.h"

#include <CUnit/Basic.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char g_dir[64];
static int g_file_no;
static const GptDims g_dims = {.vocab_size = 11, .context = 8, .n_layer = 2, .n_head = 2, .n_embd = 8};

static char *new_path(const char *tag) { return xasprintf("%s/%s-%d.h5", g_dir, tag, g_file_no++); }

static void make_model(Gpt *m, const GptDims *d, uint64_t seed)
{
    gpt_init(m, d, 2);
    gpt_init_weights(m, seed, 0.02);
}

/* AdamW over m's layout with recognisable, finite moments (including a subnormal and
 * a negative zero, which a lossy round trip would not keep). */
static void make_opt(AdamW *o, const Gpt *m, float salt)
{
    uint8_t *mask = xcalloc(m->num_params, 1);
    for (int i = 0; i < m->n_tensors; i++)
        memset(mask + m->tensors[i].offset, m->tensors[i].decay, m->tensors[i].numel);
    adamw_init(o, m->num_params, mask, 0.9, 0.95, 1e-8, 0.1);
    free(mask);
    for (size_t i = 0; i < o->n; i++) {
        o->m[i] = salt * sinf((float)i * 0.37f) * 1e-3f;
        o->v[i] = salt * (float)(i % 13) * 1e-6f;
    }
    o->m[1] = -0.0f;
    o->m[2] = 1e-42f;
    o->v[3] = 1e-44f;
    o->t = (int64_t)(salt * 1000);
}

static char *save_default(const char *tag, Gpt *m, AdamW *o)
{
    char *p = new_path(tag);
    CkptState st = {.step = 5, .rng_key = 1, .rng_counter = 2};
    ckpt_save(p, m, o, &st, "model: { n_embd = 8; };");
    return p;
}

static void test_roundtrip(void)
{
    Gpt a, b;
    AdamW oa, ob;
    make_model(&a, &g_dims, 1);
    make_model(&b, &g_dims, 2);
    a.params[0] = -0.0f; /* bit patterns that a lossy path would lose */
    a.params[5] = 1.5e-42f;
    make_opt(&oa, &a, 1.0f);
    make_opt(&ob, &b, 0.5f);
    CU_ASSERT(memcmp(a.params, b.params, a.num_params * 4) != 0);

    char *p = new_path("rt");
    CkptState st = {.step = 77, .rng_key = 0xFEDCBA9876543210ULL, .rng_counter = 0xFFFFFFFFFFFFFFF0ULL};
    ckpt_save(p, &a, &oa, &st, "train: { lr = 0.001; };");
    char *tmp = h5u_tmp_name(p);
    CU_ASSERT(access(p, F_OK) == 0);
    CU_ASSERT(access(tmp, F_OK) != 0);

    CkptState got = {0};
    char err[1024] = "";
    int rc = ckpt_load_checked(p, &b, &ob, &got, err, sizeof err);
    CU_ASSERT_EQUAL(rc, 0);
    if (rc)
        printf("\n  %s\n", err);
    CU_ASSERT(memcmp(a.params, b.params, a.num_params * sizeof(float)) == 0);
    CU_ASSERT(memcmp(oa.m, ob.m, oa.n * sizeof(float)) == 0);
    CU_ASSERT(memcmp(oa.v, ob.v, oa.n * sizeof(float)) == 0);
    CU_ASSERT_EQUAL(ob.t, oa.t);
    CU_ASSERT_EQUAL(got.step, 77);
    CU_ASSERT(got.rng_key == 0xFEDCBA9876543210ULL);
    CU_ASSERT(got.rng_counter == 0xFFFFFFFFFFFFFFF0ULL);

    GptDims d;
    CU_ASSERT_EQUAL(ckpt_read_dims(p, &d, err, sizeof err), 0);
    CU_ASSERT(memcmp(&d, &g_dims, sizeof d) == 0);

    /* Params only (opt and st NULL). */
    Gpt c;
    make_model(&c, &g_dims, 3);
    CU_ASSERT_EQUAL(ckpt_load_checked(p, &c, NULL, NULL, err, sizeof err), 0);
    CU_ASSERT(memcmp(a.params, c.params, a.num_params * sizeof(float)) == 0);

    /* The config text and the root attributes are there. */
    hid_t f = H5Fopen(p, H5F_ACC_RDONLY, H5P_DEFAULT);
    char *cfg = h5u_read_attr_str(f, "config");
    CU_ASSERT(cfg && !strcmp(cfg, "train: { lr = 0.001; };"));
    free(cfg);
    int64_t np = 0;
    CU_ASSERT(h5u_read_attr_i64(f, "num_params", &np) == 0 && np == (int64_t)a.num_params);
    H5Fclose(f);

    /* Saving over an existing checkpoint replaces it. */
    st.step = 78;
    a.params[7] = 0.125f;
    ckpt_save(p, &a, &oa, &st, NULL);
    CU_ASSERT_EQUAL(ckpt_load_checked(p, &c, NULL, &got, err, sizeof err), 0);
    CU_ASSERT_EQUAL(got.step, 78);
    CU_ASSERT_EQUAL(c.params[7], 0.125f);

    /* A stale .tmp from a crashed save does not get in the way. */
    FILE *fp = fopen(tmp, "w");
    fputs("half a checkpoint", fp);
    fclose(fp);
    ckpt_save(p, &a, &oa, &st, NULL);
    CU_ASSERT(access(tmp, F_OK) != 0);
    CU_ASSERT_EQUAL(ckpt_load_checked(p, &c, NULL, NULL, err, sizeof err), 0);

    free(tmp);
    free(p);
    adamw_free(&oa);
    adamw_free(&ob);
    gpt_free(&a);
    gpt_free(&b);
    gpt_free(&c);
}

static void test_weights_only(void)
{
    Gpt a, b;
    AdamW ob;
    make_model(&a, &g_dims, 1);
    make_model(&b, &g_dims, 2);
    make_opt(&ob, &b, 0.5f);
    AdamW keep;
    make_opt(&keep, &b, 0.5f);
    char *p = new_path("weights");
    ckpt_save(p, &a, NULL, NULL, NULL);
    CkptState st = {.step = 9};
    char err[1024] = "";
    CU_ASSERT_EQUAL(ckpt_load_checked(p, &b, &ob, &st, err, sizeof err), 0);
    CU_ASSERT(memcmp(a.params, b.params, a.num_params * sizeof(float)) == 0);
    /* No moments in the file: the optimizer keeps what it had. */
    CU_ASSERT(memcmp(ob.m, keep.m, ob.n * sizeof(float)) == 0);
    CU_ASSERT(memcmp(ob.v, keep.v, ob.n * sizeof(float)) == 0);
    CU_ASSERT_EQUAL(ob.t, keep.t);
    CU_ASSERT_EQUAL(st.step, 0);
    hid_t f = H5Fopen(p, H5F_ACC_RDONLY, H5P_DEFAULT);
    CU_ASSERT(H5Lexists(f, "adam", H5P_DEFAULT) == 0);
    H5Fclose(f);
    free(p);
    adamw_free(&ob);
    adamw_free(&keep);
    gpt_free(&a);
    gpt_free(&b);
}

/* The load must fail naming the file and each needle, and change nothing. */
static void expect_fail(const char *path, Gpt *m, AdamW *o, const char *n1, const char *n2)
{
    float *p0 = xmalloc(m->num_params * sizeof(float));
    memcpy(p0, m->params, m->num_params * sizeof(float));
    float *m0 = NULL, *v0 = NULL;
    int64_t t0 = 0;
    if (o) {
        m0 = xmalloc(o->n * sizeof(float));
        v0 = xmalloc(o->n * sizeof(float));
        memcpy(m0, o->m, o->n * sizeof(float));
        memcpy(v0, o->v, o->n * sizeof(float));
        t0 = o->t;
    }
    CkptState st = {.step = -3};
    char err[1024] = "";
    int rc = ckpt_load_checked(path, m, o, &st, err, sizeof err);
    CU_ASSERT_EQUAL(rc, -1);
    int ok = rc == -1 && strstr(err, path) && (!n1 || strstr(err, n1)) && (!n2 || strstr(err, n2));
    CU_ASSERT(ok);
    if (getenv("PREFER_TEST_VERBOSE"))
        printf("\n    %s", err);
    if (!ok)
        printf("\n  %s: message '%s' lacks '%s' / '%s'\n", path, err, n1 ? n1 : "", n2 ? n2 : "");
    CU_ASSERT(memcmp(p0, m->params, m->num_params * sizeof(float)) == 0);
    CU_ASSERT_EQUAL(st.step, -3);
    if (o) {
        CU_ASSERT(memcmp(m0, o->m, o->n * sizeof(float)) == 0);
        CU_ASSERT(memcmp(v0, o->v, o->n * sizeof(float)) == 0);
        CU_ASSERT_EQUAL(o->t, t0);
    }
    free(p0);
    free(m0);
    free(v0);
}

static void test_dims_mismatch(void)
{
    Gpt a, b, c;
    AdamW oa;
    make_model(&a, &g_dims, 1);
    make_opt(&oa, &a, 1.0f);
    char *p = save_default("dims", &a, &oa);
    GptDims wide = g_dims;
    wide.n_embd = 16;
    make_model(&b, &wide, 2);
    expect_fail(p, &b, NULL, "n_embd 8", "n_embd 16");
    GptDims longer = g_dims;
    longer.context = 16;
    make_model(&c, &longer, 2);
    expect_fail(p, &c, NULL, "context 8", "context 16");
    free(p);
    adamw_free(&oa);
    gpt_free(&a);
    gpt_free(&b);
    gpt_free(&c);
}

static void with_file_rw(const char *path, void (*fn)(hid_t f, const void *arg), const void *arg)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    CU_ASSERT_FATAL(f >= 0);
    fn(f, arg);
    H5Fclose(f);
}

static void do_delete(hid_t f, const void *arg) { CU_ASSERT(H5Ldelete(f, arg, H5P_DEFAULT) >= 0); }

static void do_reshape_wpe(hid_t f, const void *arg)
{
    CU_ASSERT(H5Ldelete(f, "params/wpe", H5P_DEFAULT) >= 0);
    hsize_t dims[2] = {8, 9};
    float z[72] = {0};
    hid_t sp = H5Screate_simple(2, dims, NULL);
    hid_t d = H5Dcreate2(f, "params/wpe", H5T_NATIVE_FLOAT, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    CU_ASSERT(H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, z) >= 0);
    H5Dclose(d);
    H5Sclose(sp);
}

typedef struct {
    const char *ds;
    hsize_t row, col;
    float value;
} Poke;

/* Overwrite one element of a 2-D dataset (row, col) or a 1-D one (row) in place; the
 * selection takes as many coordinates as the dataset has dimensions. */
static void do_poke(hid_t f, const void *arg)
{
    const Poke *p = arg;
    hid_t d = H5Dopen2(f, p->ds, H5P_DEFAULT);
    CU_ASSERT_FATAL(d >= 0);
    hid_t fs = H5Dget_space(d);
    hsize_t start[2] = {p->row, p->col}, count[2] = {1, 1}, one = 1;
    CU_ASSERT(H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL) >= 0);
    hid_t ms = H5Screate_simple(1, &one, NULL);
    CU_ASSERT(H5Dwrite(d, H5T_NATIVE_FLOAT, ms, fs, H5P_DEFAULT, &p->value) >= 0);
    H5Sclose(ms);
    H5Sclose(fs);
    H5Dclose(d);
}

static void test_missing_and_shape(void)
{
    Gpt a, b;
    AdamW oa, ob;
    make_model(&a, &g_dims, 1);
    make_model(&b, &g_dims, 2);
    make_opt(&oa, &a, 1.0f);
    make_opt(&ob, &b, 0.5f);

    char *p = save_default("missing", &a, &oa);
    with_file_rw(p, do_delete, "params/h.1.mlp.c_fc.weight");
    expect_fail(p, &b, &ob, "missing /params/h.1.mlp.c_fc.weight", NULL);
    free(p);

    p = save_default("missingm", &a, &oa);
    with_file_rw(p, do_delete, "adam/v/wpe");
    expect_fail(p, &b, &ob, "missing /adam/v/wpe", NULL);
    /* Without an optimizer the moments are not read, so the file loads. */
    char err[1024];
    CU_ASSERT_EQUAL(ckpt_load_checked(p, &b, NULL, NULL, err, sizeof err), 0);
    free(p);

    p = save_default("shape", &a, &oa);
    with_file_rw(p, do_reshape_wpe, NULL);
    expect_fail(p, &b, &ob, "/params/wpe has shape (8, 9), the model expects (8, 8)", NULL);
    free(p);

    p = save_default("nodims", &a, &oa);
    hid_t f = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
    H5Adelete(f, "n_head");
    H5Fclose(f);
    expect_fail(p, &b, &ob, "n_head attribute missing", NULL);
    GptDims d;
    CU_ASSERT_EQUAL(ckpt_read_dims(p, &d, err, sizeof err), -1);
    free(p);

    p = save_default("nostep", &a, &oa);
    f = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
    H5Adelete(f, "rng_key");
    H5Fclose(f);
    expect_fail(p, &b, &ob, "rng_key", NULL);
    free(p);

    adamw_free(&oa);
    adamw_free(&ob);
    gpt_free(&a);
    gpt_free(&b);
}

static void test_nonfinite_load(void)
{
    Gpt a, b;
    AdamW oa, ob;
    make_model(&a, &g_dims, 1);
    make_model(&b, &g_dims, 2);
    make_opt(&oa, &a, 1.0f);
    make_opt(&ob, &b, 0.5f);

    char *p = save_default("nan", &a, &oa);
    Poke k = {"params/h.0.attn.c_attn.weight", 5, 3, NAN};
    with_file_rw(p, do_poke, &k);
    expect_fail(p, &b, &ob, "/params/h.0.attn.c_attn.weight holds non-finite values", NULL);
    expect_fail(p, &b, NULL, "/params/h.0.attn.c_attn.weight", NULL);
    free(p);

    p = save_default("inf", &a, &oa);
    Poke k2 = {"params/ln_f.bias", 7, 0, -INFINITY};
    with_file_rw(p, do_poke, &k2);
    expect_fail(p, &b, &ob, "/params/ln_f.bias holds non-finite values", NULL);
    free(p);

    p = save_default("infm", &a, &oa);
    Poke k3 = {"adam/m/wte", 10, 7, INFINITY};
    with_file_rw(p, do_poke, &k3);
    expect_fail(p, &b, &ob, "/adam/m/wte holds non-finite values", NULL);
    free(p);

    p = save_default("negv", &a, &oa);
    Poke k4 = {"adam/v/h.1.ln_1.bias", 2, 0, -1.0f};
    with_file_rw(p, do_poke, &k4);
    expect_fail(p, &b, &ob, "/adam/v/h.1.ln_1.bias[2] = -1 is negative", NULL);
    free(p);

    adamw_free(&oa);
    adamw_free(&ob);
    gpt_free(&a);
    gpt_free(&b);
}

static void test_foreign(void)
{
    Gpt b;
    make_model(&b, &g_dims, 2);
    char err[1024];
    GptDims d;

    char *p = new_path("absent");
    expect_fail(p, &b, NULL, "cannot open", NULL);
    CU_ASSERT_EQUAL(ckpt_read_dims(p, &d, err, sizeof err), -1);
    free(p);

    p = new_path("text");
    FILE *fp = fopen(p, "w");
    fputs("wte 0.1 0.2 0.3\n", fp);
    fclose(fp);
    expect_fail(p, &b, NULL, "not an HDF5 file", NULL);
    CU_ASSERT_EQUAL(ckpt_read_dims(p, &d, err, sizeof err), -1);
    CU_ASSERT(strstr(err, p) && strstr(err, "not an HDF5 file"));
    free(p);

    p = new_path("bare");
    hid_t f = H5Fcreate(p, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    H5Fclose(f);
    expect_fail(p, &b, NULL, "not a prefer checkpoint (format attribute missing", NULL);
    free(p);

    /* A dataset is not a checkpoint. */
    p = new_path("data");
    int64_t zero = 0;
    PrefData pd = {.vocab_size = 11, .prompt_offsets = &zero, .response_offsets = &zero};
    prefdata_write(p, &pd, NULL);
    expect_fail(p, &b, NULL, "format attribute is 'prefer.prefdata'", "prefer.checkpoint");
    CU_ASSERT_EQUAL(ckpt_read_dims(p, &d, err, sizeof err), -1);
    free(p);

    /* A newer checkpoint version. */
    AdamW oa;
    make_opt(&oa, &b, 1.0f);
    p = save_default("newer", &b, &oa);
    f = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
    h5u_attr_i64(f, "version", CKPT_VERSION + 1);
    H5Fclose(f);
    expect_fail(p, &b, &oa, "version attribute is 2", NULL);
    free(p);
    adamw_free(&oa);
    gpt_free(&b);
}

/* ckpt_save dies on non-finite parameters: run it in a child and check the exit code,
 * the message (names the tensor) and that no file was created. */
static void test_refuse_nonfinite_save(void)
{
    Gpt a;
    make_model(&a, &g_dims, 1);
    const GptTensor *t = NULL;
    for (int i = 0; i < a.n_tensors; i++)
        if (!strcmp(a.tensors[i].name, "h.1.ln_2.bias"))
            t = &a.tensors[i];
    CU_ASSERT_FATAL(t != NULL);
    a.params[t->offset + 3] = NAN;
    char *p = new_path("refuse");
    int fds[2];
    CU_ASSERT_FATAL(pipe(fds) == 0);
    fflush(stdout);
    pid_t pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], 2);
        ckpt_save(p, &a, NULL, NULL, NULL);
        _exit(0); /* not reached: ckpt_save must die */
    }
    close(fds[1]);
    char msg[4096] = "";
    size_t len = 0;
    ssize_t r;
    while (len < sizeof msg - 1 && (r = read(fds[0], msg + len, sizeof msg - 1 - len)) > 0)
        len += (size_t)r;
    msg[len] = 0;
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == PREFER_EXIT_ERROR);
    CU_ASSERT(strstr(msg, "h.1.ln_2.bias") != NULL);
    CU_ASSERT(strstr(msg, p) != NULL);
    if (getenv("PREFER_TEST_VERBOSE"))
        printf("\n    child said: %s", msg);
    char *tmp = h5u_tmp_name(p);
    CU_ASSERT(access(p, F_OK) != 0);
    CU_ASSERT(access(tmp, F_OK) != 0);
    free(tmp);
    free(p);
    gpt_free(&a);
}

/* Every error path closed what it opened: no file, dataset, group, type, space or attribute
 * handle is left (a leaked handle keeps the file open). Runs last. */
static void test_no_open_handles(void)
{
    ssize_t n = H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL);
    CU_ASSERT_EQUAL(n, 0);
    if (n != 0)
        printf("\n  %zd HDF5 objects still open\n", n);
}

static void rm_dir(void)
{
    char *cmd = xasprintf("rm -rf '%s'", g_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", g_dir);
    free(cmd);
}

int main(void)
{
    snprintf(g_dir, sizeof g_dir, "/tmp/prefer-test-ckpt-XXXXXX");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    h5u_init();
    gpt_set_threads(1);
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite s = CU_add_suite("ckpt", NULL, NULL);
    CU_add_test(s, "bit-exact round trip", test_roundtrip);
    CU_add_test(s, "weights-only checkpoint", test_weights_only);
    CU_add_test(s, "dims mismatch", test_dims_mismatch);
    CU_add_test(s, "missing tensor, wrong shape, missing attribute", test_missing_and_shape);
    CU_add_test(s, "non-finite values refused on load", test_nonfinite_load);
    CU_add_test(s, "foreign files", test_foreign);
    CU_add_test(s, "non-finite parameters refused on save", test_refuse_nonfinite_save);
    CU_add_test(s, "no HDF5 handles left open", test_no_open_handles);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned fails = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    CU_cleanup_registry();
    rm_dir();
    return fails ? 1 : 0;
}
