/*
 * smtp_hold.c - replies held until a release time.
 * Owns: the session's held replies (one evbuffer behind the
 * bufferevent's output), their release marks and the release timer;
 * the pause of a tarpitted session's input until its reply is out.
 * Never: decides when a reply may go (smtp_rcpt.c does: the floor and
 * the tarpit, the later of the two); sleeps (STYLE R15: a timer).
 * Why: under discard, bounce, uniform mode and a distributed harvest a
 * valid and an unknown name get the same bytes; they must get them at
 * the same time too (DESIGN 3, issue 12), so such a reply goes out a
 * fixed time after its command was read, whatever the decision cost.
 * Replies stay in order (RFC 2920): a reply never goes before one held
 * before it, and a held reply never waits for a later one's mark, so a
 * pipelined group read at once is released together, and a command that
 * comes later cannot learn, from when an earlier reply left, how long
 * its own decision took.
 * Time: CLOCK_MONOTONIC in microseconds.  libevent's timer may fire a
 * little early (its cached, possibly coarse clock); the release checks
 * the real clock and re-arms, so no held reply leaves before its time.
 */
#include <stdlib.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "../lib/log.h"
#include "../net/worker.h"
#include "smtp_hold.h"
#include "smtp_session.h"

struct smtp_hold_mark {
	uint64_t	 start;		/* first byte (count since the start) */
	uint64_t	 at_us;		/* not before */
};

struct smtp_hold {
	struct evbuffer		*buf;		/* replies not yet released */
	struct event		*ev;		/* release timer */
	uint64_t		 out;		/* bytes released so far */
	struct smtp_hold_mark	 marks[SMTP_HOLD_MARKS];	/* a ring */
	unsigned		 head, n;
	bool			 paused;	/* input stopped until empty */
	enum smtp_state		 resume;	/* state after the pause */
	void			(*then)(struct smtp_session *);
};

static void	hold_release(evutil_socket_t, short, void *);

uint64_t
smtp_floor_at(uint64_t arrive_us, uint64_t now_us, uint64_t floor_us)
{
	uint64_t	k;

	if (floor_us == 0)
		return 0;
	if (now_us <= arrive_us)
		return arrive_us + floor_us;
	k = (now_us - arrive_us + floor_us - 1) / floor_us;	/* ceil */
	return arrive_us + (k == 0 ? 1 : k) * floor_us;
}

uint64_t
smtp_now_us(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

bool
smtp_held(const struct smtp_session *s)
{
	return s->hold != NULL && s->hold->n > 0;
}

size_t
smtp_held_len(const struct smtp_session *s)
{
	return smtp_held(s) ? evbuffer_get_length(s->hold->buf) : 0;
}

struct evbuffer *
smtp_out(struct smtp_session *s)
{
	return smtp_held(s) ? s->hold->buf : bufferevent_get_output(s->bev);
}

/* Allocated on a session's first held reply, whatever its verdict. */
static struct smtp_hold *
hold_get(struct smtp_session *s)
{
	struct smtp_hold	*h = s->hold;

	if (h != NULL)
		return h;
	if ((h = calloc(1, sizeof(*h))) == NULL ||
	    (h->buf = evbuffer_new()) == NULL ||
	    (h->ev = evtimer_new(s->w->base, hold_release, s)) == NULL)
		panic("smtp_hold: out of memory");
	return s->hold = h;
}

static void
hold_arm(struct smtp_hold *h, uint64_t now)
{
	uint64_t	at = h->marks[h->head].at_us;
	uint64_t	d = at > now ? at - now : 0;
	struct timeval	tv = { .tv_sec = (time_t)(d / 1000000),
			    .tv_usec = (suseconds_t)(d % 1000000) };

	if (evtimer_add(h->ev, &tv) == -1)
		panic("smtp_hold: cannot arm the release timer");
}

static void
hold_pause(struct smtp_session *s, struct smtp_hold *h,
    void (*cb)(struct smtp_session *))
{
	if (!h->paused) {
		h->paused = true;
		h->resume = s->state;
	}
	if (cb != NULL)
		h->then = cb;
	smtp_set_state(s, ST_WAIT);
	bufferevent_disable(s->bev, EV_READ);
}

void
smtp_hold(struct smtp_session *s, uint64_t at_us, bool pause)
{
	struct smtp_hold	*h;
	struct smtp_hold_mark	*last;
	uint64_t		 now = smtp_now_us();

	if (s->dead || (at_us <= now && !smtp_held(s)))
		return;			/* nothing to wait for */
	h = hold_get(s);
	if (h->n > 0) {
		last = &h->marks[(h->head + h->n - 1) % SMTP_HOLD_MARKS];
		if (at_us <= last->at_us || h->n == SMTP_HOLD_MARKS) {
			/* it goes with the last mark, never earlier */
			if (at_us > last->at_us)
				last->at_us = at_us;
			at_us = 0;
		}
	}
	if (at_us != 0) {
		h->marks[(h->head + h->n) % SMTP_HOLD_MARKS] =
		    (struct smtp_hold_mark){
			.start = h->out + evbuffer_get_length(h->buf),
			.at_us = at_us,
		};
		h->n++;
	}
	if (pause)
		hold_pause(s, h, NULL);
	hold_arm(h, now);
}

void
smtp_hold_pause(struct smtp_session *s, void (*cb)(struct smtp_session *))
{
	if (!smtp_held(s)) {
		cb(s);
		return;
	}
	hold_pause(s, s->hold, cb);
}

/* The pause ends with the last held reply: read (or go on) again. */
static void
hold_unpause(struct smtp_session *s, struct smtp_hold *h)
{
	void	(*cb)(struct smtp_session *) = h->then;

	h->paused = false;
	h->then = NULL;
	if (s->state == ST_WAIT)
		smtp_set_state(s, h->resume);
	if (cb != NULL)
		cb(s);
	else
		smtp_resume(s);
}

static void
hold_release(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_session	*s = arg;
	struct smtp_hold	*h = s->hold;
	struct evbuffer		*out = bufferevent_get_output(s->bev);
	uint64_t		 now = smtp_now_us();
	size_t			 n;
	bool			 moved = false;

	(void)fd;
	(void)what;
	if (s->dead)
		return;
	while (h->n > 0 && h->marks[h->head].at_us <= now) {
		n = h->n > 1 ? (size_t)(h->marks[(h->head + 1) %
		    SMTP_HOLD_MARKS].start - h->out) :
		    evbuffer_get_length(h->buf);
		if (evbuffer_remove_buffer(h->buf, out, n) != (int)n)
			panic("smtp_hold: cannot move %zu bytes", n);
		h->out += n;
		h->head = (h->head + 1) % SMTP_HOLD_MARKS;
		h->n--;
		moved = true;
	}
	if (h->n > 0)
		hold_arm(h, now);	/* early, or the next mark */
	if (moved)
		smtp_flush(s);
	if (h->n > 0 || s->dead)
		return;
	if (h->paused)
		hold_unpause(s, h);
	else if (s->state & (ST_ANY | ST_DATA | ST_AUTH))
		smtp_resume(s);		/* reading stopped for a full hold */
}

void
smtp_hold_free(struct smtp_session *s)
{
	struct smtp_hold	*h = s->hold;

	if (h == NULL)
		return;
	event_free(h->ev);
	evbuffer_free(h->buf);
	free(h);
	s->hold = NULL;
}
