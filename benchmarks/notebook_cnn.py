"""The course notebook's CNN cells as written (plus timing), for benchmarks/compare.py."""

import json
import time

import_start = time.perf_counter()
import tensorflow as tf
import_seconds = time.perf_counter() - import_start

fmnist = tf.keras.datasets.fashion_mnist
(training_images, training_labels), (test_images, test_labels) = fmnist.load_data()

training_images = training_images / 255.0
test_images = test_images / 255.0

model = tf.keras.models.Sequential([
  tf.keras.layers.Conv2D(32, (3,3), activation='relu', input_shape=(28, 28, 1)),
  tf.keras.layers.MaxPooling2D(2, 2),
  tf.keras.layers.Conv2D(32, (3,3), activation='relu'),
  tf.keras.layers.MaxPooling2D(2,2),
  tf.keras.layers.Flatten(),
  tf.keras.layers.Dense(128, activation='relu'),
  tf.keras.layers.Dense(10, activation='softmax')
])
model.summary()
model.compile(optimizer='adam', loss='sparse_categorical_crossentropy', metrics=['accuracy'])

start = time.perf_counter()
history = model.fit(training_images, training_labels, epochs=5)
fit_seconds = time.perf_counter() - start

start = time.perf_counter()
test_loss = model.evaluate(test_images, test_labels)
evaluate_seconds = time.perf_counter() - start
print("BENCHMARK " + json.dumps({"fit_seconds": fit_seconds, "epochs": 5, "test_accuracy": test_loss[1],
                                 "import_seconds": import_seconds, "evaluate_seconds": evaluate_seconds,
                                 "train_accuracy": history.history["accuracy"][-1]}))
