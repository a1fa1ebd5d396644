package notify

import "testing"

func TestFanoutNeverBlocksAndCancels(t *testing.T) {
	var f Fanout
	a, cancelA := f.Subscribe()
	b, cancelB := f.Subscribe()
	defer cancelB()
	for range 3 {
		f.Notify() // a and b read nothing yet: the later ones merge
	}
	for name, ch := range map[string]<-chan struct{}{"a": a, "b": b} {
		select {
		case <-ch:
		default:
			t.Errorf("%s got no notification", name)
		}
		select {
		case <-ch:
			t.Errorf("%s got a second one for notifications made before it read", name)
		default:
		}
	}
	cancelA()
	cancelA() // twice is fine
	f.Notify()
	select {
	case <-a:
		t.Error("a cancelled subscriber was notified")
	default:
	}
	select {
	case <-b:
	default:
		t.Error("b was not notified")
	}
}
