/*
 * Unit tests of the drop-ins: policy_append_buffer (src/policy.c: a drop-in
 * read after the main file) and policy_load_files (src/policy-files.c: which
 * files, in which order, and whether they may be trusted).
 *
 * Each case asserts the exact "FILE:LINE:COLUMN: message" lines, or the
 * rules and domains that come out with the file and line they came from.
 * The files are written in a temporary directory removed by each test.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "policy.h"
#include "policy-files.h"

/* ---- helpers ---- */

static void dump_diag(const struct policy_diag *diag)
{
    for (size_t i = 0; i < diag->n; i++)
        print_message("  diag[%zu] = %s\n", i, diag->msgs[i]);
}

/* Asserts diag holds exactly the NULL-terminated want, in order; frees it. */
static void assert_diag(struct policy_diag *diag, const char *const *want)
{
    char got[1024] = "", expected[1024] = "";
    size_t n = 0, got_n = diag->n;

    while (want[n])
        n++;
    if (got_n != n)
        dump_diag(diag);
    for (size_t i = 0; i < n && i < got_n; i++) {
        if (strcmp(diag->msgs[i], want[i]) != 0) {
            snprintf(got, sizeof(got), "%s", diag->msgs[i]);
            snprintf(expected, sizeof(expected), "%s", want[i]);
            break;
        }
    }
    policy_diag_free(diag);
    assert_string_equal(got, expected);
    assert_int_equal(got_n, n);
}

/* The main file's text, then each drop-in's (name, text, ... NULL), appended. */
static struct policy *append_all(struct policy_diag *diag, const char *main_text, ...)
{
    struct policy *p = policy_load_buffer("main.yaml", main_text, strlen(main_text), diag);
    const char *name;
    va_list ap;
    int r = 0;

    assert_non_null(p);
    va_start(ap, main_text);
    while ((name = va_arg(ap, const char *))) {
        const char *text = va_arg(ap, const char *);

        if (policy_append_buffer(p, name, text, strlen(text), diag) < 0)
            r = -EINVAL;
    }
    va_end(ap);
    if (r == 0 && policy_finish(p) < 0)
        r = -ENOMEM;
    if (r < 0) {
        policy_free(p);
        return NULL;
    }
    return p;
}

struct tree {
    char dir[64];
    char policy[128];
    char dropins[128];
};

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

/* A directory with policy.yaml (main_text) and, when dropins, policy.d/. */
static void tree_new(struct tree *t, const char *main_text, bool dropins)
{
    snprintf(t->dir, sizeof(t->dir), "/tmp/aua-policy-files.XXXXXX");
    assert_non_null(mkdtemp(t->dir));
    snprintf(t->policy, sizeof(t->policy), "%s/policy.yaml", t->dir);
    snprintf(t->dropins, sizeof(t->dropins), "%s/policy.d", t->dir);
    write_file(t->policy, main_text);
    if (dropins)
        assert_int_equal(mkdir(t->dropins, 0755), 0);
}

static const char *tree_path(const struct tree *t, const char *name, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%s", t->dropins, name);
    return buf;
}

static void tree_add(const struct tree *t, const char *name, const char *text)
{
    char path[256];

    write_file(tree_path(t, name, path, sizeof(path)), text);
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static void tree_free(struct tree *t)
{
    assert_int_equal(nftw(t->dir, remove_one, 8, FTW_DEPTH | FTW_PHYS), 0);
}

static const char MAIN[] =
    "version: 1\n"
    "defaults:\n"
    "  controller: { version: 3, ports: 4, max: 1 }\n"
    "  qmp-socket: /run/qmp.sock\n"
    "  allow-dom0-lockout: true\n"
    "domains:\n"
    "  vault: {}\n"
    "rules:\n"
    "  - name: keys\n"
    "    match: { id: \"1050:*\" }\n"
    "    domain: vault\n";

/* ---- policy_append_buffer ---- */

static void rules_appended_with_their_file(void **state)
{
    struct policy_diag diag = { 0 };
    struct policy *p = append_all(&diag, MAIN,
                                  "a.yaml", "version: 1\nrules:\n"
                                            "  - match: { id: \"046d:*\" }\n"
                                            "    domain: vault\n",
                                  "b.yaml", "version: 1\ndomains:\n  win10: {}\nrules:\n"
                                            "  - name: rest\n    match: {}\n"
                                            "    domain: win10\n",
                                  NULL);

    dump_diag(&diag);
    assert_non_null(p);
    assert_int_equal(diag.n, 0);
    assert_int_equal(p->n_rules, 3);
    assert_int_equal(p->n_dropins, 2);
    assert_string_equal(p->rules[0].file, "main.yaml");
    assert_false(p->rules[0].dropin);
    assert_int_equal(p->rules[0].line, 9);
    assert_string_equal(p->rules[1].file, "a.yaml");
    assert_true(p->rules[1].dropin);
    assert_int_equal(p->rules[1].index, 2);
    assert_int_equal(p->rules[1].line, 3);
    /* A drop-in's rule may name the main file's domain... */
    assert_string_equal(p->domains[p->rules[1].domain].name, "vault");
    /* ... or one its own file declares. */
    assert_string_equal(p->rules[2].file, "b.yaml");
    assert_int_equal(p->rules[2].line, 5);
    assert_string_equal(p->rules[2].name, "rest");
    assert_string_equal(p->domains[p->rules[2].domain].name, "win10");
    assert_string_equal(p->domains[1].file, "b.yaml");
    assert_int_equal(p->domains[1].line, 3);
    /* The rules' allow-dom0-lockout falls back on the main file's defaults. */
    assert_true(p->rules[1].allow_lockout);
    assert_true(p->rules[2].allow_lockout);
    policy_free(p);
    policy_diag_free(&diag);
}

static void dropin_domains_use_main_defaults(void **state)
{
    struct policy_diag diag = { 0 };
    struct policy *p = append_all(&diag, MAIN,
                                  "a.yaml", "version: 1\ndomains:\n"
                                            "  win10: {}\n"
                                            "  old: { controller: { version: 1 } }\n"
                                            "  own: { qmp-socket: /run/own.sock,"
                                            " allow-dom0-lockout: false }\n",
                                  NULL);
    int w, o, n;

    dump_diag(&diag);
    assert_non_null(p);
    w = policy_find_domain(p, "win10");
    o = policy_find_domain(p, "old");
    n = policy_find_domain(p, "own");
    assert_true(w > 0 && o > 0 && n > 0);
    assert_int_equal(p->domains[w].controller.version, 3);
    assert_int_equal(p->domains[w].controller.ports, 4);
    assert_int_equal(p->domains[w].controller.max, 1);
    assert_string_equal(p->domains[w].qmp_socket, "/run/qmp.sock");
    assert_true(p->domains[w].allow_lockout);
    /* The version given: its own port count, the defaults' max. */
    assert_int_equal(p->domains[o].controller.version, 1);
    assert_int_equal(p->domains[o].controller.ports, 2);
    assert_int_equal(p->domains[o].controller.max, 1);
    assert_string_equal(p->domains[n].qmp_socket, "/run/own.sock");
    assert_false(p->domains[n].allow_lockout);
    policy_free(p);
    policy_diag_free(&diag);
}

static void dropin_errors(void **state)
{
    struct policy_diag diag = { 0 };
    struct policy *p = append_all(&diag, MAIN,
                                  "a.yaml", "version: 1\ndefaults: {}\ndomains:\n"
                                            "  vault: {}\n  win10: {}\n"
                                            "rules:\n  - match: {}\n    domain: later\n",
                                  "b.yaml", "version: 1\ndomains:\n  later: {}\n  win10: {}\n",
                                  NULL);

    assert_null(p);
    assert_diag(&diag, (const char *const[]){
        "a.yaml:2:11: 'defaults' may be set only in the main policy file (main.yaml), "
        "whose defaults a drop-in's domains use",
        "a.yaml:4:3: domain 'vault' is declared twice: here and at main.yaml:7",
        "a.yaml:8:13: unknown domain 'later' (declare it under 'domains:')",
        "b.yaml:4:3: domain 'win10' is declared twice: here and at a.yaml:5",
        NULL });
}

/* The main file's own duplicate keeps its message. */
static void duplicate_in_one_file(void **state)
{
    struct policy_diag diag = { 0 };
    static const char text[] = "version: 1\ndomains:\n  a: {}\n  a: {}\n";

    assert_null(policy_load_buffer("main.yaml", text, strlen(text), &diag));
    assert_diag(&diag, (const char *const[]){
        "main.yaml:4:3: duplicate domain 'a' (first at line 3)", NULL });
}

/* ---- policy_load_files ---- */

static const char RULE_TO_VAULT[] = "version: 1\nrules:\n  - match: {}\n    domain: vault\n";

static void files_in_name_order(void **state)
{
    struct policy_diag diag = { 0 };
    struct tree t;
    struct policy *p;
    char a[256], b[256];

    tree_new(&t, MAIN, true);
    tree_add(&t, "20-b.yaml", "version: 1\nrules:\n  - name: b\n    match: {}\n"
                              "    domain: vault\n");
    tree_add(&t, "10-a.yaml", "version: 1\nrules:\n  - name: a\n    match: {}\n"
                              "    domain: vault\n");
    /* Not drop-ins: other suffixes, hidden files (a broken text in each). */
    tree_add(&t, "README", "{");
    tree_add(&t, "10-a.yaml.dpkg-old", "{");
    tree_add(&t, "10-a.yaml~", "{");
    tree_add(&t, ".05-hidden.yaml", "{");
    p = policy_load_files(t.policy, POLICY_ROOT_ONLY, &diag);
    dump_diag(&diag);
    assert_non_null(p);
    assert_int_equal(p->n_rules, 3);
    assert_int_equal(p->n_dropins, 2);
    assert_string_equal(p->dropins[0], tree_path(&t, "10-a.yaml", a, sizeof(a)));
    assert_string_equal(p->dropins[1], tree_path(&t, "20-b.yaml", b, sizeof(b)));
    assert_string_equal(p->rules[0].file, t.policy);
    assert_string_equal(p->rules[1].name, "a");
    assert_string_equal(p->rules[1].file, a);
    assert_string_equal(p->rules[2].name, "b");
    assert_string_equal(p->rules[2].file, b);
    /* The index sees the appended rules: the first match wins across files. */
    assert_non_null(p->index);
    policy_free(p);
    policy_diag_free(&diag);
    tree_free(&t);
}

static void no_dropin_directory(void **state)
{
    struct policy_diag diag = { 0 };
    struct tree t;
    struct policy *p;

    tree_new(&t, MAIN, false);
    p = policy_load_files(t.policy, POLICY_ROOT_ONLY, &diag);
    assert_non_null(p);
    assert_int_equal(diag.n, 0);
    assert_int_equal(p->n_dropins, 0);
    assert_int_equal(p->n_rules, 1);
    policy_free(p);
    tree_free(&t);
}

/* Every drop-in is checked; one bad file anywhere and no policy comes out. */
static void every_file_reported(void **state)
{
    struct policy_diag diag = { 0 };
    struct tree t;
    char a[256], b[256], c[256], w3[300];

    tree_new(&t, MAIN, true);
    tree_add(&t, "10-a.yaml", "version: 1\nrules:\n  - match: { colour: red }\n"
                              "    domain: vault\n");
    tree_add(&t, "20-good.yaml", RULE_TO_VAULT);
    tree_add(&t, "30-b.yaml", "version: 1\nrules: [\n");
    assert_int_equal(mkdir(tree_path(&t, "40-dir.yaml", c, sizeof(c)), 0755), 0);
    assert_null(policy_load_files(t.policy, POLICY_ROOT_ONLY, &diag));
    tree_path(&t, "10-a.yaml", a, sizeof(a));
    tree_path(&t, "30-b.yaml", b, sizeof(b));
    snprintf(w3, sizeof(w3), "%s:1:1: not a regular file", c);
    if (diag.n != 3)
        dump_diag(&diag);
    /* The parser's own wording is test-policy.c's; here: which files, in order. */
    assert_int_equal(diag.n, 3);
    assert_true(strncmp(diag.msgs[0], a, strlen(a)) == 0 && diag.msgs[0][strlen(a)] == ':');
    assert_true(strncmp(diag.msgs[1], b, strlen(b)) == 0 && diag.msgs[1][strlen(b)] == ':');
    assert_string_equal(diag.msgs[2], w3);
    policy_diag_free(&diag);
    tree_free(&t);
}

/* A main file with errors: its messages alone (the drop-ins name its domains). */
static void main_error_first(void **state)
{
    struct policy_diag diag = { 0 };
    struct tree t;

    tree_new(&t, "version: 2\n", true);
    tree_add(&t, "10-a.yaml", "{");
    assert_null(policy_load_files(t.policy, 0, &diag));
    if (diag.n != 1)
        dump_diag(&diag);
    assert_int_equal(diag.n, 1);
    assert_true(strncmp(diag.msgs[0], t.policy, strlen(t.policy)) == 0);
    policy_diag_free(&diag);
    tree_free(&t);
}

static void untrusted_files(void **state)
{
    struct policy_diag diag = { 0 };
    struct tree t;
    struct policy *p;
    char a[256], want[512];

    tree_new(&t, MAIN, true);
    tree_add(&t, "10-a.yaml", RULE_TO_VAULT);
    tree_path(&t, "10-a.yaml", a, sizeof(a));

    /* A drop-in others may write. */
    assert_int_equal(chmod(a, 0664), 0);
    assert_null(policy_load_files(t.policy, POLICY_ROOT_ONLY, &diag));
    snprintf(want, sizeof(want), "%s:1:1: refused: the file is writable by others than root "
             "(mode 0664, owner uid %u); make it root's and writable by root only (or start "
             "with --insecure-policy)", a, (unsigned)geteuid());
    if (geteuid() == 0) {
        assert_diag(&diag, (const char *const[]){ want, NULL });
    } else {
        /* Not root: the main file is refused first, as not root's. */
        assert_true(diag.n >= 1 && strstr(diag.msgs[0], "not owned by root"));
        policy_diag_free(&diag);
    }
    /* Without the check (--insecure-policy, --dry-run) it is read. */
    p = policy_load_files(t.policy, 0, &diag);
    assert_non_null(p);
    assert_int_equal(p->n_rules, 2);
    policy_free(p);
    assert_int_equal(chmod(a, 0644), 0);

    if (geteuid() == 0) {
        /* The directory: whoever may write it may add a drop-in. */
        assert_int_equal(chmod(t.dropins, 0777), 0);
        assert_null(policy_load_files(t.policy, POLICY_ROOT_ONLY, &diag));
        snprintf(want, sizeof(want), "%s:1:1: refused: the directory is writable by others "
                 "than root (mode 0777, owner uid 0); make it root's and writable by root only "
                 "(or start with --insecure-policy)", t.dropins);
        assert_diag(&diag, (const char *const[]){ want, NULL });
        assert_int_equal(chmod(t.dropins, 0755), 0);

        /* A drop-in someone else owns. */
        assert_int_equal(chown(a, 65534, 0), 0);
        assert_null(policy_load_files(t.policy, POLICY_ROOT_ONLY, &diag));
        snprintf(want, sizeof(want), "%s:1:1: refused: the file is not owned by root "
                 "(mode 0644, owner uid 65534); make it root's and writable by root only "
                 "(or start with --insecure-policy)", a);
        assert_diag(&diag, (const char *const[]){ want, NULL });
    }
    tree_free(&t);
}

static void dropin_dir_name(void **state)
{
    char *d = policy_dropin_dir("/etc/auto-usb-attach/policy.yaml");

    assert_string_equal(d, "/etc/auto-usb-attach/policy.d");
    free(d);
    d = policy_dropin_dir("policy.yaml");
    assert_string_equal(d, "policy.d");
    free(d);
}

int main(void)
{
    static const struct CMUnitTest tests[] = {
        cmocka_unit_test(rules_appended_with_their_file),
        cmocka_unit_test(dropin_domains_use_main_defaults),
        cmocka_unit_test(dropin_errors),
        cmocka_unit_test(duplicate_in_one_file),
        cmocka_unit_test(files_in_name_order),
        cmocka_unit_test(no_dropin_directory),
        cmocka_unit_test(every_file_reported),
        cmocka_unit_test(main_error_first),
        cmocka_unit_test(untrusted_files),
        cmocka_unit_test(dropin_dir_name),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
