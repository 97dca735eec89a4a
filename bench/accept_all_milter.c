// SPDX-License-Identifier: BSD-2-Clause
/* The baseline of bench/run-mta-bench: the least a libmilter milter can do while still
 * seeing a whole SMTP transaction. It registers every callback, takes every protocol step
 * the MTA offers (none switched off with SMFIP_NO*, a reply to each), asks for no
 * actions, and returns SMFIS_CONTINUE everywhere, so the MTA accepts every message.
 *
 *   accept_all_milter SOCKET        e.g. inet:8895@127.0.0.1 or unix:/run/x.sock
 *
 * SIGTERM, SIGINT or SIGHUP stop it (libmilter's own signal handling).
 */
#include <libmilter/mfapi.h>
#include <stdio.h>

static sfsistat on_connect(SMFICTX* ctx, char* host, _SOCK_ADDR* addr) {
    (void)ctx, (void)host, (void)addr;
    return SMFIS_CONTINUE;
}

static sfsistat on_helo(SMFICTX* ctx, char* name) {
    (void)ctx, (void)name;
    return SMFIS_CONTINUE;
}

static sfsistat on_envfrom(SMFICTX* ctx, char** args) {
    (void)ctx, (void)args;
    return SMFIS_CONTINUE;
}

static sfsistat on_envrcpt(SMFICTX* ctx, char** args) {
    (void)ctx, (void)args;
    return SMFIS_CONTINUE;
}

static sfsistat on_header(SMFICTX* ctx, char* name, char* value) {
    (void)ctx, (void)name, (void)value;
    return SMFIS_CONTINUE;
}

static sfsistat on_body(SMFICTX* ctx, unsigned char* chunk, size_t size) {
    (void)ctx, (void)chunk, (void)size;
    return SMFIS_CONTINUE;
}

static sfsistat on_unknown(SMFICTX* ctx, const char* command) {
    (void)ctx, (void)command;
    return SMFIS_CONTINUE;
}

/* eoh, eom, abort, close and data take only the context. */
static sfsistat on_event(SMFICTX* ctx) {
    (void)ctx;
    return SMFIS_CONTINUE;
}

/* SMFIS_ALL_OPTS: every step the MTA offers, none switched off with SMFIP_NO*. */
static sfsistat on_negotiate(SMFICTX* ctx, unsigned long actions, unsigned long steps,
                             unsigned long unused0, unsigned long unused1,
                             unsigned long* want_actions, unsigned long* want_steps,
                             unsigned long* want_unused0, unsigned long* want_unused1) {
    (void)ctx, (void)actions, (void)steps, (void)unused0, (void)unused1;
    (void)want_actions, (void)want_steps, (void)want_unused0, (void)want_unused1;
    return SMFIS_ALL_OPTS;
}

int main(int argc, char** argv) {
    struct smfiDesc description = {
        .xxfi_name = "accept-all",
        .xxfi_version = SMFI_VERSION,
        .xxfi_flags = 0,
        .xxfi_connect = on_connect,
        .xxfi_helo = on_helo,
        .xxfi_envfrom = on_envfrom,
        .xxfi_envrcpt = on_envrcpt,
        .xxfi_header = on_header,
        .xxfi_eoh = on_event,
        .xxfi_body = on_body,
        .xxfi_eom = on_event,
        .xxfi_abort = on_event,
        .xxfi_close = on_event,
        .xxfi_unknown = on_unknown,
        .xxfi_data = on_event,
        .xxfi_negotiate = on_negotiate,
    };
    if (argc != 2) {
        fprintf(stderr, "usage: %s SOCKET   (inet:PORT@HOST or unix:/path)\n", argv[0]);
        return 2;
    }
    if (smfi_setconn(argv[1]) != MI_SUCCESS || smfi_register(description) != MI_SUCCESS ||
        smfi_opensocket(1) != MI_SUCCESS) {
        fprintf(stderr, "accept_all_milter: cannot listen on %s\n", argv[1]);
        return 1;
    }
    return smfi_main() == MI_SUCCESS ? 0 : 1;
}
