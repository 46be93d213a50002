package mpsc_test

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/realmstream/realmstream/libs/mpsc"
)

// Example shows the shape the gateway uses: many producers, one consumer
// that drains in batches and parks when idle, and Close to finish.
func Example() {
	ctx := context.Background()
	ring := mpsc.New[int](8)

	var producers sync.WaitGroup
	for p := 0; p < 3; p++ {
		producers.Add(1)
		go func() {
			defer producers.Done()
			for i := 0; i < 100; i++ {
				if err := ring.Enqueue(ctx, 1); err != nil {
					return // ErrClosed or ctx done: the item was not accepted
				}
			}
		}()
	}
	go func() { producers.Wait(); ring.Close() }()

	sum := 0
	buf := make([]int, 4)
	for {
		n := ring.DequeueBatch(buf)
		if n == 0 {
			if err := ring.Wait(ctx); err != nil {
				fmt.Println(errors.Is(err, mpsc.ErrClosed))
				break
			}
			continue
		}
		for _, v := range buf[:n] {
			sum += v
		}
	}
	fmt.Println(sum)
	// Output:
	// true
	// 300
}
