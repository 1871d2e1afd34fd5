/* nif-2: the example app's NIF library rebuilt: native() says 2. A changed
 * NIF library cannot be hot-loaded (the node keeps the one it loaded), so
 * this release ships by a restart from nif. */
#include <erl_nif.h>

#ifndef NATIVE_VERSION
#define NATIVE_VERSION 2
#endif

static ERL_NIF_TERM native(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    (void)argv;
    return enif_make_int(env, NATIVE_VERSION);
}

static ErlNifFunc funcs[] = {{"native", 0, native, 0}};

ERL_NIF_INIT(example_app_nif, funcs, NULL, NULL, NULL, NULL)
