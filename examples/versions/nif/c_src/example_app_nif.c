/* nif: native code in the example app. NATIVE_VERSION says which build of
 * the library a node has loaded: a changed NIF library cannot be hot-loaded
 * (the node keeps the one it loaded), so a release that changes it ships by
 * a restart. */
#include <erl_nif.h>

#ifndef NATIVE_VERSION
#define NATIVE_VERSION 1
#endif

static ERL_NIF_TERM native(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    (void)argv;
    return enif_make_int(env, NATIVE_VERSION);
}

static ErlNifFunc funcs[] = {{"native", 0, native, 0}};

ERL_NIF_INIT(example_app_nif, funcs, NULL, NULL, NULL, NULL)
