/*
 * peers: which FastCGI peers may connect (FCGI_WEB_SERVER_ADDRS, libfcgi's
 * convention, extended to IPv6 and host names). The server checks a peer
 * once, when it accepts the connection, before reading a byte from it.
 * Fail closed: no list means this machine's loopback only; "*" means any.
 */
#define _GNU_SOURCE
#include "http/peers.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "base/log.h"
#include "base/util.h"

#define MAX_ENTRIES 32
#define MAX_ADDRS 64
/* An unknown peer re-resolves the names at most this often. */
#define RESOLVE_EVERY 1.0

/* An address as 16 bytes: IPv4 as its IPv4-mapped IPv6 form. */
struct addr16 {
	unsigned char b[16];
};

static void to16_v4(const struct in_addr *a, struct addr16 *out);
static int find(const struct addr16 *a);
static void resolve_names(void);

/*
 * peers_mu guards everything below. Nothing blocks while it is held:
 * names are resolved with it released (resolving marks that one thread
 * does it) and the result is swapped in under it.
 */
static pthread_mutex_t peers_mu = PTHREAD_MUTEX_INITIALIZER;
static int any_peer;			/* the list was "*" */
static char names[MAX_ENTRIES][254];	/* entries that are host names */
static int nnames;
static struct addr16 literal[MAX_ENTRIES];	/* entries that are addresses */
static int nliteral;
static struct addr16 resolved[MAX_ADDRS];	/* what the names resolved to */
static int nresolved;
static int resolving;
static double last_resolve = -1e9;

static void to16_v4(const struct in_addr *a, struct addr16 *out)
{
	memset(out->b, 0, 10);
	out->b[10] = out->b[11] = 0xff;
	memcpy(out->b + 12, &a->s_addr, 4);
}

/* 1 when a is listed or resolved; peers_mu held. */
static int find(const struct addr16 *a)
{
	int i;

	for (i = 0; i < nliteral; i++)
		if (memcmp(literal[i].b, a->b, 16) == 0)
			return 1;
	for (i = 0; i < nresolved; i++)
		if (memcmp(resolved[i].b, a->b, 16) == 0)
			return 1;
	return 0;
}

void peers_reset(void)
{
	pthread_mutex_lock(&peers_mu);
	any_peer = nnames = nliteral = nresolved = 0;
	last_resolve = -1e9;
	pthread_mutex_unlock(&peers_mu);
}

/* The list an empty FCGI_WEB_SERVER_ADDRS stands for. */
#define LOOPBACK_ONLY "127.0.0.1,::1"

int peers_any(const char *list)
{
	return list != NULL && strcmp(list, "*") == 0;
}

void peers_setup(const char *list)
{
	const char *p = list && *list ? list : LOOPBACK_ONLY;

	peers_reset();
	pthread_mutex_lock(&peers_mu);
	any_peer = peers_any(list);
	while (!any_peer && *p) {
		size_t len = strcspn(p, ",");
		char entry[254];
		struct in_addr v4;
		struct in6_addr v6;

		while (len > 0 && p[len - 1] == ' ')
			len--;
		if (len > 0 && len < sizeof(entry)) {
			memcpy(entry, p, len);
			entry[len] = '\0';
			if (inet_pton(AF_INET, entry, &v4) == 1 && nliteral < MAX_ENTRIES) {
				to16_v4(&v4, &literal[nliteral++]);
			} else if (inet_pton(AF_INET6, entry, &v6) == 1 && nliteral < MAX_ENTRIES) {
				memcpy(literal[nliteral++].b, v6.s6_addr, 16);
			} else if (nnames < MAX_ENTRIES) {
				memcpy(names[nnames++], entry, len + 1);
			}
		}
		p += strcspn(p, ",");
		p += strspn(p, ", ");
	}
	pthread_mutex_unlock(&peers_mu);
	if (nnames > 0)
		resolve_names();
}

/* Resolve every name (peers_mu not held) and swap the result in. */
static void resolve_names(void)
{
	struct addr16 found[MAX_ADDRS];
	char local[MAX_ENTRIES][254];
	int n = 0, count, i;

	pthread_mutex_lock(&peers_mu);
	if (resolving || now_mono() - last_resolve < RESOLVE_EVERY) {
		pthread_mutex_unlock(&peers_mu);
		return;
	}
	resolving = 1;
	last_resolve = now_mono();
	count = nnames;
	memcpy(local, names, sizeof(local));
	pthread_mutex_unlock(&peers_mu);

	for (i = 0; i < count; i++) {
		struct addrinfo hints, *res = NULL, *ai;

		memset(&hints, 0, sizeof(hints));
		hints.ai_socktype = SOCK_STREAM;
		if (getaddrinfo(local[i], NULL, &hints, &res) != 0)
			continue;	/* not there yet (compose starts nginx later) */
		for (ai = res; ai && n < MAX_ADDRS; ai = ai->ai_next) {
			if (ai->ai_family == AF_INET)
				to16_v4(&((struct sockaddr_in *)ai->ai_addr)->sin_addr, &found[n++]);
			else if (ai->ai_family == AF_INET6)
				memcpy(found[n++].b, ((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr.s6_addr, 16);
		}
		freeaddrinfo(res);
	}

	pthread_mutex_lock(&peers_mu);
	memcpy(resolved, found, (size_t)n * sizeof(found[0]));
	nresolved = n;
	resolving = 0;
	pthread_mutex_unlock(&peers_mu);
}

int peers_allowed(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	struct addr16 a;
	int ok, has_names;

	if (getpeername(fd, (struct sockaddr *)&ss, &len) != 0)
		return 0;
	if (ss.ss_family == AF_UNIX)
		return 1;
	pthread_mutex_lock(&peers_mu);
	ok = any_peer;
	pthread_mutex_unlock(&peers_mu);
	if (ok)
		return 1;
	if (ss.ss_family == AF_INET)
		to16_v4(&((struct sockaddr_in *)&ss)->sin_addr, &a);
	else if (ss.ss_family == AF_INET6)
		memcpy(a.b, ((struct sockaddr_in6 *)&ss)->sin6_addr.s6_addr, 16);
	else
		return 0;
	pthread_mutex_lock(&peers_mu);
	ok = find(&a);
	has_names = nnames > 0;
	pthread_mutex_unlock(&peers_mu);
	if (ok || !has_names)
		return ok;
	resolve_names();
	pthread_mutex_lock(&peers_mu);
	ok = find(&a);
	pthread_mutex_unlock(&peers_mu);
	return ok;
}
