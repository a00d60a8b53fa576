package distributor

import "errors"

type errNotElected struct{}

func (errNotElected) Error() string { return "not elected" }

// IsNotElected tells a replica's samples were dropped.
func IsNotElected(err error) bool { return errors.As(err, new(errNotElected)) }
