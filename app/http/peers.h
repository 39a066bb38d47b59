/*
 * peers: which TCP peers may speak FastCGI to the service. The list is
 * FCGI_WEB_SERVER_ADDRS, libfcgi's own convention (comma-separated
 * addresses), extended to IPv6 and to host names such as compose's
 * "nginx" (resolved again, at most once a second, when an unknown peer
 * connects, so a restarted nginx with a new address is let in). A unix
 * socket peer is always allowed: the socket file's mode guards it.
 *
 * Fail closed (unlike libfcgi): an empty list allows this machine's
 * loopback only (127.0.0.1 and ::1, also as ::ffff:127.0.0.1); any peer
 * at all must be asked for with "*".
 */
#ifndef PS_PEERS_H
#define PS_PEERS_H

/*
 * Take the list (validated by config_load; "" or NULL: loopback only; "*":
 * every peer). Call once before serving; names that do not resolve yet
 * are tried again later. The string is copied.
 */
void peers_setup(const char *list);

/* 1 when list is "*" (every peer allowed), else 0. */
int peers_any(const char *list);

/* 1 when the peer of the connected socket fd may be served, else 0. */
int peers_allowed(int fd);

/* Forget the list (tests). */
void peers_reset(void);

#endif
