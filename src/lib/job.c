/*
 * job.c - thread pool for blocking work, completions handed back to the
 * loop through a pipe (see job.h).  Owns: the threads, the two queues.
 * Never: runs a done callback off the loop, or touches libevent from a
 * pool thread (only write(2) on the wake-up pipe).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#include <event2/event.h>

#include "job.h"
#include "log.h"

struct job {
	struct job	*next;
	job_fn		*fn;
	job_done_fn	*done;
	void		*arg;
};

struct job_queue {
	struct job	*head;
	struct job	*tail;
};

struct job_pool {
	struct event_base	*base;
	struct event		*wake_ev;
	int			 wake[2];
	pthread_mutex_t		 mu;
	pthread_cond_t		 cv;
	struct job_queue	 todo;
	struct job_queue	 done;
	bool			 stopping;
	unsigned		 pending;	/* loop side only */
	unsigned		 nthreads;
	pthread_t		*threads;
};

static void
jq_push(struct job_queue *q, struct job *j)
{
	j->next = NULL;
	if (q->tail)
		q->tail->next = j;
	else
		q->head = j;
	q->tail = j;
}

static struct job *
jq_pop(struct job_queue *q)
{
	struct job	*j = q->head;

	if (j) {
		q->head = j->next;
		if (q->head == NULL)
			q->tail = NULL;
	}
	return j;
}

static void *
job_thread(void *vp)
{
	struct job_pool	*p = vp;
	struct job	*j;
	char		 c = 1;

	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (p->todo.head == NULL && !p->stopping)
			pthread_cond_wait(&p->cv, &p->mu);
		if ((j = jq_pop(&p->todo)) == NULL)
			break;		/* stopping and nothing left */
		pthread_mutex_unlock(&p->mu);
		j->fn(j->arg);
		pthread_mutex_lock(&p->mu);
		jq_push(&p->done, j);
		while (write(p->wake[1], &c, 1) == -1 && errno == EINTR)
			;
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

static void
job_drain(evutil_socket_t fd, short what, void *vp)
{
	struct job_pool	*p = vp;
	struct job_queue q;
	struct job	*j;
	char		 sink[256];

	(void)what;
	while (read(fd, sink, sizeof(sink)) > 0)
		;
	pthread_mutex_lock(&p->mu);
	q = p->done;
	p->done.head = p->done.tail = NULL;
	pthread_mutex_unlock(&p->mu);
	while ((j = jq_pop(&q)) != NULL) {
		p->pending--;
		if (j->done)
			j->done(j->arg);
		free(j);
	}
}

struct job_pool *
job_pool_new(struct event_base *base, unsigned nthreads)
{
	struct job_pool	*p;
	unsigned	 i;

	if ((p = calloc(1, sizeof(*p))) == NULL)
		return NULL;
	p->base = base;
	if (pipe2(p->wake, O_NONBLOCK | O_CLOEXEC) == -1)
		fatal("msg=\"job pool pipe: %m\"");
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	p->wake_ev = event_new(base, p->wake[0], EV_READ | EV_PERSIST,
	    job_drain, p);
	if (p->wake_ev == NULL || event_add(p->wake_ev, NULL) == -1)
		fatal("msg=\"job pool event\"");
	p->nthreads = nthreads ? nthreads : 1;
	if ((p->threads = calloc(p->nthreads, sizeof(pthread_t))) == NULL)
		fatal("msg=\"job pool: out of memory\"");
	for (i = 0; i < p->nthreads; i++)
		if (pthread_create(&p->threads[i], NULL, job_thread, p) != 0)
			fatal("msg=\"job pool: cannot start thread\"");
	return p;
}

int
job_submit(struct job_pool *p, job_fn *fn, job_done_fn *done, void *arg)
{
	struct job	*j;

	if (p->stopping || (j = malloc(sizeof(*j))) == NULL)
		return -1;
	j->fn = fn;
	j->done = done;
	j->arg = arg;
	pthread_mutex_lock(&p->mu);
	jq_push(&p->todo, j);
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
	p->pending++;
	return 0;
}

unsigned
job_pending(const struct job_pool *p)
{
	return p->pending;
}

void
job_pool_free(struct job_pool *p)
{
	unsigned	i;

	if (p == NULL)
		return;
	pthread_mutex_lock(&p->mu);
	p->stopping = true;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	for (i = 0; i < p->nthreads; i++)
		pthread_join(p->threads[i], NULL);
	job_drain(p->wake[0], EV_READ, p);
	event_free(p->wake_ev);
	close(p->wake[0]);
	close(p->wake[1]);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
	free(p->threads);
	free(p);
}
