/*
 * Promela model of libs/mpsc (QUEUE-T7): the slot protocol (claim by CAS on
 * tail, gate on head, publish by seqs), the consumer's park/wake handshake,
 * the producers' park/token handshake, and Close.
 *
 * Every Go atomic operation (Load, Store, CAS, Or, Add) is one Promela
 * statement (sequentially consistent, as Go's sync/atomic); plain accesses of
 * vals are separate statements; code under pmu is one atomic block. The
 * unbounded "positions" are ints; seqs and vals have C slots.
 *
 * Checked (spin -a; gcc pan.c; ./pan):
 *   - assertion: the consumer receives each producer's items in order, once
 *     (no duplicate, no reordering) and, at the end, exactly the accepted ones
 *     (no loss);
 *   - invalid end states: a goroutine left blocked on a channel (a lost
 *     wake-up of the consumer or of a parked producer) is reported;
 *   - the consumer ends only once Close happened and it drained everything.
 *
 * Not modelled: ctx cancellation, the spin phases (they only retry), and
 * Stats.
 */

#ifndef C
#define C 2		/* capacity (power of two) */
#endif
#ifndef P
#define P 2		/* producers */
#endif
#ifndef K
#define K 2		/* items per producer */
#endif
#define BATCH 2		/* consumer buffer size */

#define OK 0
#define FULL 1
#define CLOSED 2

byte tail = 0;		/* tail word: position ... */
bool closed = false;	/* ... and closedBit, always read/written together */
byte head = 0;
byte seqs[C];
byte vals[C];
bit sleeping = 0;
chan wake = [1] of { bit };
byte pwaiting = 0;
chan pwake = [P] of { bit };
byte accepted[P];
byte got[P];

inline trySignal(won) {
	atomic { if :: sleeping == 1 -> sleeping = 0; won = 1 :: else -> won = 0 fi };
	if
	:: won -> atomic { if :: nfull(wake) -> wake!1 :: full(wake) -> skip fi }
	:: else -> skip
	fi
}

inline wakeProducers(n) {
	if
	:: pwaiting == 0 -> skip
	:: else ->
		atomic { n = pwaiting; pwaiting = 0 };
		do
		:: n > 0 -> pwake!1; n--
		:: else -> break
		od
	fi
}

inline tryEnqueue(v, res, t, c, ok, won) {
	res = 0;
	do
	:: atomic { t = tail; c = closed };
		if
		:: c -> res = CLOSED; break
		:: else -> skip
		fi;
		if
		:: t - head >= C -> res = FULL; break
		:: else -> skip
		fi;
		atomic { if :: (tail == t && !closed) -> tail = t + 1; ok = 1 :: else -> ok = 0 fi };
		if
		:: ok ->
			vals[t % C] = v;
			seqs[t % C] = t + 1;
			trySignal(won);
			res = OK;
			break
		:: else -> skip
		fi
	od
}

inline unregister(owed) {
	atomic { if :: pwaiting > 0 -> pwaiting--; owed = 0 :: else -> owed = 1 fi };
	if
	:: owed -> pwake?_
	:: else -> skip
	fi
}

proctype Producer(byte id) {
	byte k = 0;
	byte v, res, t;
	bit c, ok, won, owed;
	do
	:: k == K -> break
	:: k < K ->
		v = id * K + k + 1;
		tryEnqueue(v, res, t, c, ok, won);
		do
		:: res == FULL ->
			atomic { pwaiting++ };
			tryEnqueue(v, res, t, c, ok, won);
			if
			:: res != FULL -> unregister(owed)
			:: else ->
				pwake?_;
				tryEnqueue(v, res, t, c, ok, won)
			fi
		:: else -> break
		od;
		/* forget dead temporaries: keeps the state space small */
		atomic { t = 0; c = 0; ok = 0; won = 0; owed = 0; v = 0 };
		if
		:: res == OK -> accepted[id]++; k++; res = 0
		:: res == CLOSED -> break
		fi
	od
}

proctype Consumer() {
	byte h, n, v, id, w;
	do
	:: h = head; n = 0;
		do
		:: n < BATCH && seqs[(h + n) % C] >= h + n + 1 ->
			v = vals[(h + n) % C];
			vals[(h + n) % C] = 0;
			assert(v != 0);
			id = (v - 1) / K;
			assert((v - 1) % K == got[id]);	/* per-producer FIFO, no duplicate */
			got[id]++;
			n++
		:: else -> break
		od;
		atomic { v = 0; id = 0 };
		if
		:: n > 0 ->
			head = h + n;
			wakeProducers(w);
			atomic { h = 0; n = 0; w = 0 }
		:: else ->
			atomic { h = 0; n = 0 };
			/* Wait: drained? ready? else arm, re-check, park. */
			if
			:: (closed && head == tail) -> goto done
			:: else -> skip
			fi;
			do
			:: seqs[head % C] >= head + 1 -> break
			:: else ->
				sleeping = 1;
				if
				:: seqs[head % C] >= head + 1 -> sleeping = 0; break
				:: else -> skip
				fi;
				if
				:: (closed && head == tail) -> sleeping = 0; goto done
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
	bit won;
	byte w;
	closed = true;
	trySignal(won);
	wakeProducers(w)
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
