/*
 * Promela model of the producer lanes of libs/mpsc (lane.go; QUEUE-T7 for
 * the lane algorithm): every producer owns a single-producer lane, writes
 * the value ahead of tail and publishes with CAS(tail, t, t+1) (which fails
 * once Close has set the closed bit), and checks for room against a cached
 * copy of head that it reloads only when the lane looks full. The consumer
 * drains the lanes round-robin in batches, one head store per lane per
 * batch, then wakes that lane's owner if it armed parking; it parks itself
 * with the same arm / re-check handshake over all lanes. Close sets every
 * lane's closed bit, one after the other, then wakes the consumer and every
 * lane's owner.
 *
 * Every Go atomic operation is one Promela statement (sequentially
 * consistent); plain accesses of vals are separate statements; the
 * producer's cached head and the consumer's cursor are locals.
 *
 * Checked (spin -a; gcc -DSAFETY pan.c; ./pan):
 *   - assertions: each producer's items arrive in order, once, never a
 *     value from a slot that was not published; at the end, exactly the
 *     accepted items arrived (no loss);
 *   - invalid end states: a goroutine left blocked (a lost wake-up of the
 *     consumer or of a parked producer);
 *   - the consumer ends only once every lane is closed and drained.
 */

#ifndef C
#define C 2		/* lane capacity */
#endif
#ifndef P
#define P 2		/* producers = lanes */
#endif
#ifndef K
#define K 2		/* items per producer */
#endif
#define BATCH 2		/* consumer buffer size */

#define OK 0
#define FULL 1
#define CLOSED 2

byte ltail[P];		/* tail word of each lane: position ... */
bool lclosed[P];	/* ... and closedBit, always read/written together */
byte lhead[P];
byte lvals[P * C];
bit lwaiting[P];
chan lwake[P] = [1] of { bit };
bit sleeping = 0;
chan wake = [1] of { bit };
byte accepted[P];
byte got[P];

inline trySignal(won) {
	atomic { if :: sleeping == 1 -> sleeping = 0; won = 1 :: else -> won = 0 fi };
	if
	:: won -> atomic { if :: nfull(wake) -> wake!1 :: full(wake) -> skip fi }
	:: else -> skip
	fi
}

inline wakeOwner(j, won) {
	atomic { if :: lwaiting[j] == 1 -> lwaiting[j] = 0; won = 1 :: else -> won = 0 fi };
	if
	:: won -> atomic { if :: nfull(lwake[j]) -> lwake[j]!1 :: full(lwake[j]) -> skip fi }
	:: else -> skip
	fi;
	won = 0
}

inline tryEnqueue(id, v, res, t, c, cache, ok, won) {
	atomic { t = ltail[id]; c = lclosed[id] };
	if
	:: c -> res = CLOSED
	:: else ->
		if
		:: t - cache >= C -> cache = lhead[id]
		:: else -> skip
		fi;
		if
		:: t - cache >= C -> res = FULL
		:: else ->
			lvals[id * C + t % C] = v;
			atomic { if :: (ltail[id] == t && !lclosed[id]) -> ltail[id] = t + 1; ok = 1 :: else -> ok = 0 fi };
			if
			:: ok -> trySignal(won); res = OK
			:: else -> lvals[id * C + t % C] = 0; res = CLOSED
			fi
		fi
	fi;
	atomic { t = 0; c = 0; ok = 0; won = 0 }
}

proctype Producer(byte id) {
	byte k = 0;
	byte v, res, t, cache = 0;
	bit c, ok, won;
	do
	:: k == K -> break
	:: k < K ->
		v = id * K + k + 1;
		tryEnqueue(id, v, res, t, c, cache, ok, won);
		do
		:: res == FULL ->
			lwaiting[id] = 1;
			tryEnqueue(id, v, res, t, c, cache, ok, won);
			if
			:: res != FULL -> lwaiting[id] = 0
			:: else ->
				lwake[id]?_;
				tryEnqueue(id, v, res, t, c, cache, ok, won)
			fi
		:: else -> break
		od;
		v = 0;
		if
		:: res == OK -> accepted[id]++; k++; res = 0
		:: res == CLOSED -> break
		fi
	od
}

/* ready: some lane has a published, unconsumed item (one load per lane). */
inline ready(j, r) {
	r = 0; j = 0;
	do
	:: j < P ->
		if
		:: ltail[j] != lhead[j] -> r = 1
		:: else -> skip
		fi;
		j++
	:: else -> break
	od;
	j = 0
}

/* drained: every lane closed and empty (one load of each tail word). */
inline drained(j, r) {
	r = 1; j = 0;
	do
	:: j < P ->
		atomic {
			if
			:: !(lclosed[j] && lhead[j] == ltail[j]) -> r = 0
			:: else -> skip
			fi
		};
		j++
	:: else -> break
	od;
	j = 0
}

proctype Consumer() {
	byte cursor = 0, n, k, j, h, t, m, v, id;
	bit r, won;
	do
	:: n = 0; k = 0;
		do
		:: k < P && n < BATCH ->
			j = (cursor + k) % P;
			h = lhead[j];
			t = ltail[j];		/* one load: the closed bit is not part of it */
			m = 0;
			do
			:: h + m < t && n < BATCH ->
				v = lvals[j * C + (h + m) % C];
				lvals[j * C + (h + m) % C] = 0;
				assert(v != 0);
				id = (v - 1) / K;
				assert(id == j);
				assert((v - 1) % K == got[id]);	/* FIFO, no duplicate */
				got[id]++;
				m++; n++
			:: else -> break
			od;
			if
			:: m > 0 ->
				lhead[j] = h + m;
				wakeOwner(j, won);
				cursor = (j + 1) % P
			:: else -> skip
			fi;
			atomic { h = 0; t = 0; m = 0; v = 0; id = 0 };
			k++
		:: else -> break
		od;
		atomic { j = 0; k = 0 };
		if
		:: n > 0 -> n = 0
		:: else ->
			/* Wait: drained? ready? else arm, re-check, park. */
			drained(j, r);
			if
			:: r -> goto done
			:: else -> skip
			fi;
			do
			:: ready(j, r);
				if
				:: r -> r = 0; break
				:: else -> skip
				fi;
				sleeping = 1;
				ready(j, r);
				if
				:: r -> sleeping = 0; r = 0; break
				:: else -> skip
				fi;
				drained(j, r);
				if
				:: r -> sleeping = 0; goto done
				:: else -> skip
				fi;
				wake?_
			od
		fi
	od;
done:
	skip
}

proctype Closer() {
	byte j = 0;
	bit won;
	do
	:: j < P -> lclosed[j] = true; j++
	:: else -> break
	od;
	trySignal(won);
	j = 0;
	do
	:: j < P -> wakeOwner(j, won); j++
	:: else -> break
	od
}

init {
	byte i;
	atomic {
		i = 0;
		do
		:: i < P -> run Producer(i); i++
		:: else -> break
		od;
		run Consumer();
		run Closer()
	};
	(_nr_pr == 1);
	i = 0;
	do
	:: i < P -> assert(got[i] == accepted[i]); i++	/* no loss */
	:: else -> break
	od
}
