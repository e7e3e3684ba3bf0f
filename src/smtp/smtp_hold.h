/*
 * smtp_hold.h - replies held until a release time (see smtp_hold.c):
 * the RCPT reply floor (rcpt_reply_floor, issue 12) and the tarpit.
 */
#ifndef MXGATE_SMTP_HOLD_H
#define MXGATE_SMTP_HOLD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct evbuffer;
struct smtp_session;

/* Marks (distinct release times) pending at once; more are merged into
 * the last one, which can only make a reply later, never earlier. */
#define SMTP_HOLD_MARKS	16

/*
 * The floor's release time, pure: arrive + floor if the decision (now)
 * came within the floor, else the next multiple of the floor after
 * arrive that is not before now; 0 when floor_us is 0 (off).  Times in
 * monotonic microseconds.
 */
uint64_t smtp_floor_at(uint64_t arrive_us, uint64_t now_us, uint64_t floor_us);

uint64_t smtp_now_us(void);		/* monotonic, microseconds */

/* Where a reply goes now: behind the held ones, or straight out. */
struct evbuffer *smtp_out(struct smtp_session *);

/*
 * The reply written next (and every one after it until the next call)
 * goes out no earlier than at_us, nor before the replies held before it
 * (RFC 2920: in order).  pause: the session reads nothing more until all
 * held replies are out (the tarpit).  Nothing is held when at_us has
 * passed and nothing else is held.
 */
void	smtp_hold(struct smtp_session *, uint64_t at_us, bool pause);

/* The session reads nothing until the held replies are out; then cb
 * runs (a command that must follow them, e.g. STARTTLS). */
void	smtp_hold_pause(struct smtp_session *,
	    void (*cb)(struct smtp_session *));

bool	smtp_held(const struct smtp_session *);	/* replies waiting */
size_t	smtp_held_len(const struct smtp_session *);
void	smtp_hold_free(struct smtp_session *);

#endif
