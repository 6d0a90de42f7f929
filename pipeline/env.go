package pipeline

import "maps"

// StepEnv returns the environment of one step of s: the stage environment
// with the step's own variables merged over it. The result is a new map.
func (s *Stage) StepEnv(step *Step) map[string]string {
	env := make(map[string]string, len(s.Env)+len(step.Env))
	maps.Copy(env, s.Env)
	maps.Copy(env, step.Env)
	return env
}

// StepTimeout returns the effective timeout of step in s: its own, or the
// stage's when it has none.
func (s *Stage) StepTimeout(step *Step) Duration {
	if step.Timeout > 0 {
		return step.Timeout
	}
	return s.Timeout
}

// StepImage returns the image step runs in: its own, or the stage's.
func (s *Stage) StepImage(step *Step) string {
	if step.Image != "" {
		return step.Image
	}
	return s.Image
}
