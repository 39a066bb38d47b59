/*
 * server: the FastCGI side. One listening socket (unix or TCP, IPv4 or
 * IPv6) and WORKERS threads sharing one epoll set that holds it and every
 * idle kept-alive nginx connection, so an idle connection pins no thread;
 * a thread takes one event, serves that connection's request with an
 * FCGX_Request of the request's own, and re-arms the connection. A request
 * the admission gate parks (a person's read waiting for a database place,
 * context.h) keeps its FCGX_Request and connection without a thread; when
 * the gate lets it go on, an eventfd in the same epoll set hands it to the
 * next free worker. The shutdown path: on SIGTERM
 * or SIGINT stop accepting, close idle connections, let in-flight
 * requests finish within SHUTDOWN_TIMEOUT, then return.
 */
#ifndef PS_SERVER_H
#define PS_SERVER_H

#include "http/context.h"

/*
 * Open the socket named by cfg->fcgi_listen. Returns the listening fd, or
 * -1 with the reason in err.
 */
int server_listen(const char *spec, char *err, size_t errlen);

/*
 * Serve on listen_fd until SIGTERM/SIGINT, then drain. Blocks those
 * signals in the calling thread first (call before any other thread
 * starts). Returns 0 after a clean drain, -1 if requests were still
 * running when the shutdown timeout ended them.
 */
int server_run(struct app *app, int listen_fd);

#endif
